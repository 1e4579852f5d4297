"""Reading workload files into a WorkloadConfig, and planning and writing patches."""
