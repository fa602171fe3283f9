"""Human evaluation of zero-shot instruction following (Youku-mPLUG §5.4, Fig. 5) and caption preference (Panda-70M).

One module per step:

- :mod:`~vlstudy.humaneval.protocol`: sample videos and Chinese instructions, collect responses, write a blinded
  rating package (``items.json``, ``frames/``, ``rating.html``) and its key (kept apart).
- :mod:`~vlstudy.humaneval.instructions`: instructions grounded in mini-Youku's truth, each with the facts a
  correct answer states and a reference answer; instruction-tuning pairs from the training split's truth.
- :mod:`~vlstudy.humaneval.rubric`: the deterministic A–D grader of an answer against its instruction's facts.
- :mod:`~vlstudy.humaneval.page`: the self-contained offline rating page.
- :mod:`~vlstudy.humaneval.ratings`: import and validate the ratings CSV the page exports; de-blind it.
- :mod:`~vlstudy.humaneval.simulate`: a *simulated* rater panel around the rubric's grades (the embedded default).
- :mod:`~vlstudy.humaneval.scores`: grade shares, mean scores with bootstrap intervals, paired tests, ordered
  claims (HOLDS / FAILS), preference ratios.
- :mod:`~vlstudy.humaneval.agreement`: inter-rater agreement, rubric-vs-rater agreement, metric correlations.
- :mod:`~vlstudy.humaneval.analysis`: the stage's config, the panel to analyse, every result in one report.
"""
