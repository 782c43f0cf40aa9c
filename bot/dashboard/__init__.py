"""The maintainers' and operators' dashboard under /ui/, and the candidate ranking."""
