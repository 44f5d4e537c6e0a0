"""Builder, workflows list, dashboard and publishing pages; every view reaches rows via request.tenant."""
