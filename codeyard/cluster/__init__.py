"""Work that must run once per cluster, not once per API server (issue 16): one elected holder."""
