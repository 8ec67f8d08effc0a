"""The models of the compress chain: MotivNet and its checkpoints, the teachers (MotivNet or any
exported classifier with a spec, and the built-in demo teacher) and the students."""
