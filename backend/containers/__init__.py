"""Container lifecycle: the service behind the container routes."""
