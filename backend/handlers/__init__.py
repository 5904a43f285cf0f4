"""HTTP handlers, grouped by resource. The route table is in ``backend.routes``."""
