"""grade: sanitize -> execute -> evaluate -> score per submission, then record once for the batch."""
