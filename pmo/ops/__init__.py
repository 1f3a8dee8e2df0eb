"""Operations: online backup and verified restore, health checks, metrics."""
