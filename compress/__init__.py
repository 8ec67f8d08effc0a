"""Teacher model (MotivNet), distillation, export and INT8 quantisation. Needs torch."""
