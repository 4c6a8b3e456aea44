"""Pictures made from results: qualitative galleries and their image sources."""
