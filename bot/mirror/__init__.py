"""The local issue mirror: storage, import formats, related search and PR detection."""
