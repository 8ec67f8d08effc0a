"""The distil stage: faces found and cut (data), augmented views (augment), the teacher's cached
outputs (teacher_cache), knowledge distillation (train), and the stage that runs them (stage)."""
