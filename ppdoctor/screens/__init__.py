"""The TUI's screens (Textual): one per workflow step, plus start, help and modal dialogs."""
