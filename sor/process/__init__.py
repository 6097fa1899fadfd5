"""Child processes: spawning on exact descriptors, pipes with deadlines, bounded exchanges."""
