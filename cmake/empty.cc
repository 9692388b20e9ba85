// Source of the empty library that stands for a src/ folder with no code yet.
