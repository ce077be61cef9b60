"""The app's screens: the run list (home) and one run's detail."""
