"""HTTP/1.1: the client connection under the Runtime API client, the servers' plumbing."""
