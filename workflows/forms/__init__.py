"""Forms of the builder, drawn from each step kind's `fields`."""
