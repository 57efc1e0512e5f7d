"""The TUI's widgets (Textual). ``safe`` renders untrusted text; the rest draw one domain object each."""
