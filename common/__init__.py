"""Small libraries every layer may use (the bottom of the import contract): structured logging with the
engine's context, the NUL-byte input guard, and the API schema's shared components. They import nothing
of Rowbell's apps, so config (the top) and the engine (below it) can both use them."""
