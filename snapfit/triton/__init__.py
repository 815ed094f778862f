"""Running Triton here: locating the server binary, its backends, and starting/stopping it."""
