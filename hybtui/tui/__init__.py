"""The interactive app: a live view of the run store.

The app only reads the store, in thread workers that each open their own Store, and
asks the launcher to act; it never trains in its own process."""
