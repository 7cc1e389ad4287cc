"""Side-by-side benchmarks of peer PostgreSQL job queues (pgqueuer, procrastinate)."""
