"""Project tools outside the library proper: result collection for this repository's docs
(`tools.results`). They may import any layer; nothing in the package imports them."""
