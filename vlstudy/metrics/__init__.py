"""Evaluation metrics of the study, all returning one :class:`MetricResult` (see ``base.py`` for units).

classification (top-K accuracy), captioning (BLEU/METEOR/ROUGE-L/CIDEr on character-level Chinese),
retrieval (R@K, MdR, MnR both ways), videomind (multi-layer retrieval, Tables 2-3), bootstrap (confidence intervals),
verdict (the words for a paired comparison: the claimed way or not, and whether its interval excludes 0).
"""
