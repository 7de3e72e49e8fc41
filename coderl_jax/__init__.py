"""coderl_jax: CodeRL+ in JAX."""
