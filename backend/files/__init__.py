"""Files in and out of a sandbox (issue 15): paths, tar streams and the service the file routes
use. Docker is reached only through ``DockerService`` (its archive and exec calls)."""
