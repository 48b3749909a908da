"""Scanning the submitted paths, the producer's first step: `walk` finds the candidate
files, `folders` sums up whole folders to share unchanged ones, `hash` hashes the rest
as a stream, `ahead` runs it all a bounded distance ahead of registration."""
