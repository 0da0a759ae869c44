"""Media plane: ingest from the performer, forward encoded frames to viewers, never re-encode."""
