"""The data layer: the official CSV formats, video I/O, frame caching, datasets, filters, splits, statistics, mini-Youku."""
