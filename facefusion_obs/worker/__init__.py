"""The worker process: serves every filter instance of one OBS, one channel each."""
