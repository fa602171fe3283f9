"""mini-Youku: the synthetic stand-in for Youku-mPLUG that the kit generates (world, texts, renderer, generator)."""
