"""Policy engine: PIPL checks, sensitive-category refusal, impact assessment, subject rights."""
