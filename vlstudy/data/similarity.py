"""Video-text agreement scorers for the low-similarity filter (Youku-mPLUG §3.1).

The paper removes pairs whose video and title disagree, scored with Chinese-CLIP (Yang et al., 2022,
"Chinese CLIP: Contrastive Vision-Language Pretraining in Chinese"). Two scorers share one interface,
`VideoTextScorer`, so the filter does not care which one runs:

- ``ChineseClipScorer``: transformers ``ChineseCLIPModel`` / ``ChineseCLIPProcessor`` loaded with
  ``from_pretrained`` from a *local* checkpoint folder (e.g. a copy of OFA-Sys/chinese-clip-vit-base-patch16;
  nothing is fetched at run time). Score = cosine between the title embedding and the mean of the
  L2-normalised embeddings of a few frames (the 'middle' frame of equal segments).
- ``CooccurrenceScorer`` (the default; no pretrained weights, no labels): an IBM-Model-1 style translation
  model between *visual words* and title words, fitted on the pool itself (Brown et al., 1993, "The
  mathematics of statistical machine translation"; Duygulu et al., ECCV 2002, "Object recognition as machine
  translation", which learns the same word <-> image-region model). Steps:

  1. Visual words. Each frame is cut into a ``grid x grid`` grid; a cell is described by its mean and standard
     deviation of R, G, B (colour and texture), shape (6,). K-means (``visual_words`` centres, scipy) over the
     pool's cells quantises them; a video becomes a distribution q_d over visual words, shape (V,).
  2. Translation table. P(w | v), shape (V, W), for jieba title words w (words in >= ``min_word_count``
     titles), fitted by EM to maximise sum_d sum_{w in title_d} log sum_v q_dv P(w | v). Started from
     uniform, the first EM step gives plain soft co-occurrence counts; later steps "explain away" words
     that co-occur with everything.
  3. Score of (video d, title) = the weighted mean over the title's known words w of
     PMI(w, d) = log[((1 - smoothing) * sum_v q_dv P(w | v) + smoothing * P(w)) / P(w)] -- > 0 when the
     video makes the word likelier than its base rate -- with weight KL(P(v | w) || P(v)), how much the word
     says about what is seen. Generic words (大家好, 一起来看吧) weigh about 0 and no longer dilute the
     evidence of the visual words (colours, scenes, objects). NaN when no title word is known.

  Mismatched titles are a small share of a pool, so the fitted associations come from the agreeing pairs
  and a title taken from another category scores low.

A scorer computes per-video features where frames are decoded (``video_features``, inside the filter's
worker processes) and scores all (features, title) pairs at once (``score``), so the co-occurrence model can be
fitted on the whole pool.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy.cluster.vq import kmeans2, vq
from scipy.sparse import csr_matrix

__all__ = ["SimilarityConfig", "VideoTextScorer", "CooccurrenceScorer", "ChineseClipScorer", "make_scorer",
           "grid_descriptors"]


@dataclass
class SimilarityConfig:
    """Which scorer rates video-text agreement, and its settings.

    Attributes:
        scorer: ``"default"`` (the co-occurrence model) or the path of a local ChineseCLIP checkpoint folder.
        num_frames: frames per video given to the scorer ('middle' frames of equal segments).
        grid: cells per side when cutting a frame into visual-word regions (co-occurrence scorer).
        visual_words: k-means centres (co-occurrence scorer).
        em_iterations: EM steps for the translation table; 1 = plain co-occurrence counts.
        smoothing: weight of the word's base rate in the scored probability, in (0, 1).
        min_word_count: a title word must appear in at least this many titles to be modelled.
        kmeans_sample: at most this many cells (sampled uniformly) fit k-means.
        batch_size: texts / frames per forward pass (ChineseCLIP).
        device: torch device for ChineseCLIP.
    """

    scorer: str = "default"
    num_frames: int = 4
    grid: int = 8
    visual_words: int = 64
    em_iterations: int = 10
    smoothing: float = 0.1
    min_word_count: int = 2
    kmeans_sample: int = 50_000
    batch_size: int = 32
    device: str = "cpu"

    def __post_init__(self):
        if not 0 < self.smoothing < 1:
            raise ValueError(f"smoothing must be in (0, 1), got {self.smoothing}")
        if self.em_iterations < 1:
            raise ValueError(f"em_iterations must be >= 1, got {self.em_iterations}")


class VideoTextScorer(Protocol):
    """The interface of a video-text scorer.

    ``video_features`` runs once per video on its ``num_frames`` frames, uint8 (T, H, W, 3), H and W at least
    ``min_side``, and returns a small array; ``score`` takes those arrays and the titles, and returns one float
    per pair, shape (N,) (higher = better agreement; NaN = cannot score).
    """

    name: str
    num_frames: int
    min_side: int

    def video_features(self, frames: np.ndarray) -> np.ndarray: ...

    def score(self, features: Sequence[np.ndarray], titles: Sequence[str]) -> np.ndarray: ...


def grid_descriptors(frames: np.ndarray, grid: int) -> np.ndarray:
    """Colour/texture descriptors of the cells of a grid laid over each frame.

    Args:
        frames: uint8 RGB, shape (T, H, W, 3); H and W at least `grid`.
        grid: cells per side.

    Returns:
        float32, shape (T * grid * grid, 6): mean R, G, B and standard deviation of R, G, B per cell, in 0..1.

    Raises:
        ValueError: a frame is smaller than the grid (its cells would be empty and their means NaN).
    """
    t, h, w, _ = frames.shape
    if h < grid or w < grid:
        raise ValueError(f"frames of {w}x{h} px are smaller than the {grid}x{grid} grid of visual-word cells")
    ch, cw = h // grid, w // grid
    cells = frames[:, :ch * grid, :cw * grid].astype(np.float32) / 255.0
    cells = cells.reshape(t, grid, ch, grid, cw, 3)  # (T, gy, ch, gx, cw, 3)
    mean, std = cells.mean(axis=(2, 4)), cells.std(axis=(2, 4))  # (T, gy, gx, 3) each
    return np.concatenate([mean, std], axis=-1).reshape(-1, 6)


class CooccurrenceScorer:
    """The default scorer: an IBM-Model-1 translation model from visual words to title words (module docstring).

    Args:
        config: the scorer settings.
        tokenize: title -> words (the filters pass `vlstudy.data.filters.title_words`, jieba-based).
        rng: seeds the k-means sample and initialisation.
    """

    name = "cooccurrence"

    def __init__(self, config: SimilarityConfig, tokenize: Callable[[str], list[str]], rng: np.random.Generator):
        self.config = config
        self.num_frames = config.num_frames
        self.min_side = config.grid  # one pixel per grid cell at least
        self.tokenize = tokenize
        self.rng = rng

    def video_features(self, frames: np.ndarray) -> np.ndarray:
        """Grid-cell descriptors of the frames, shape (T * grid * grid, 6)."""
        return grid_descriptors(frames, self.config.grid)

    def visual_word_histograms(self, features: Sequence[np.ndarray]) -> np.ndarray:
        """Fit k-means on the cells of all videos; return each video's visual-word distribution, shape (N, V)."""
        cells = np.concatenate(features).astype(np.float64)
        sample = cells
        if len(cells) > self.config.kmeans_sample:
            sample = cells[self.rng.choice(len(cells), self.config.kmeans_sample, replace=False)]
        k = min(self.config.visual_words, len(np.unique(sample, axis=0)))
        codebook, _ = kmeans2(sample, k, minit="++", rng=self.rng)
        codes, _ = vq(cells, codebook)
        video = np.repeat(np.arange(len(features)), [len(f) for f in features])
        counts = np.zeros((len(features), k))
        np.add.at(counts, (video, codes), 1.0)
        return counts / counts.sum(axis=1, keepdims=True)

    def fit_translation(self, q: np.ndarray, words: csr_matrix) -> np.ndarray:
        """EM for the translation table P(w | v).

        Args:
            q: visual-word distributions, shape (N, V).
            words: title word counts, sparse, shape (N, W).

        Returns:
            P(w | v), shape (V, W); rows sum to 1.
        """
        coo = words.tocoo()
        table = np.full((q.shape[1], words.shape[1]), 1.0 / words.shape[1])
        for _ in range(self.config.em_iterations):
            # E-step: P(w | d) = sum_v q_dv P(w | v) at every (title, word) entry, shape (nnz,).
            p_word = np.einsum("nv,vn->n", q[coo.row], table[:, coo.col])
            ratio = csr_matrix((coo.data / p_word, (coo.row, coo.col)), shape=words.shape)
            # M-step: expected (v, w) alignment counts, renormalised per visual word.
            table = table * (ratio.T @ q).T
            table /= table.sum(axis=1, keepdims=True) + 1e-12
        return table

    def score(self, features: Sequence[np.ndarray], titles: Sequence[str]) -> np.ndarray:
        """Fit on these pairs and score each: weighted mean PMI of its title words given its video (module docstring).

        Args:
            features: per-video cell descriptors from `video_features`, shapes (C_i, 6).
            titles: one title per video.

        Returns:
            float64 scores, shape (N,); NaN where no title word is in the fitted vocabulary.
        """
        if len(features) != len(titles):
            raise ValueError(f"{len(features)} videos but {len(titles)} titles")
        if len(titles) == 0:
            return np.zeros(0)
        tokens = [sorted(set(self.tokenize(t))) for t in titles]
        document_freq: dict[str, int] = {}
        for words in tokens:
            for w in words:
                document_freq[w] = document_freq.get(w, 0) + 1
        vocab = {w: i for i, w in enumerate(sorted(w for w, n in document_freq.items()
                                                   if n >= self.config.min_word_count))}
        if not vocab:
            return np.full(len(titles), np.nan)
        rows = [d for d, words in enumerate(tokens) for w in words if w in vocab]
        cols = [vocab[w] for words in tokens for w in words if w in vocab]
        counts = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(titles), len(vocab)))
        base = np.asarray(counts.sum(axis=0)).ravel() / counts.sum()  # P(w), shape (W,)

        q = self.visual_word_histograms(features)
        table = self.fit_translation(q, counts)
        coo = counts.tocoo()
        p_word = np.einsum("nv,vn->n", q[coo.row], table[:, coo.col])
        lam = self.config.smoothing
        pmi = np.log(((1 - lam) * p_word + lam * base[coo.col]) / base[coo.col])
        weight = self.word_weights(q, table)[coo.col]
        total = np.bincount(coo.row, weights=pmi * weight, minlength=len(titles))
        mass = np.bincount(coo.row, weights=weight, minlength=len(titles))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(mass > 0, total / mass, np.nan)

    @staticmethod
    def word_weights(q: np.ndarray, table: np.ndarray) -> np.ndarray:
        """KL(P(v | w) || P(v)) of each word, shape (W,): 0 for a word that says nothing about the video.

        Args:
            q: visual-word distributions, shape (N, V).
            table: P(w | v), shape (V, W).
        """
        prior = q.mean(axis=0)  # P(v), shape (V,)
        posterior = table * prior[:, None]
        posterior /= posterior.sum(axis=0, keepdims=True) + 1e-12  # P(v | w), shape (V, W)
        return (posterior * np.log((posterior + 1e-12) / (prior[:, None] + 1e-12))).sum(axis=0)


class ChineseClipScorer:
    """Chinese-CLIP cosine similarity between a title and the mean embedding of a few frames.

    Args:
        checkpoint: a local folder written by ``save_pretrained`` (config.json, weights, tokenizer and
            image-processor files).
        config: frames per video, batch size and device.

    Raises:
        FileNotFoundError: the folder or its config.json does not exist.
    """

    name = "chinese_clip"

    def __init__(self, checkpoint: str | Path, config: SimilarityConfig):
        self.checkpoint = Path(checkpoint)
        if not (self.checkpoint / "config.json").is_file():
            raise FileNotFoundError(
                f"ChineseCLIP checkpoint {self.checkpoint}: no config.json there. Copy a checkpoint folder "
                "(e.g. OFA-Sys/chinese-clip-vit-base-patch16, saved with save_pretrained) to this machine and pass "
                "its path, or use scorer 'default'; nothing is downloaded at run time.")
        self.config = config
        self.num_frames = config.num_frames
        self.min_side = 1  # the processor resizes any frame
        self._loaded = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_loaded"] = None  # each worker process loads its own copy
        return state

    def _model(self):
        if self._loaded is None:
            from transformers import ChineseCLIPModel, ChineseCLIPProcessor

            model = ChineseCLIPModel.from_pretrained(self.checkpoint).eval().to(self.config.device)
            self._loaded = (model, ChineseCLIPProcessor.from_pretrained(self.checkpoint))
        return self._loaded

    def video_features(self, frames: np.ndarray) -> np.ndarray:
        """Mean of the L2-normalised frame embeddings (normalised again), shape (D,)."""
        import torch

        model, processor = self._model()
        # Channels-last said explicitly: the processor otherwise guesses, and reads a 3-pixel-high frame as CHW.
        inputs = processor(images=list(frames), return_tensors="pt", input_data_format="channels_last")
        inputs = inputs.to(self.config.device)
        with torch.inference_mode():
            emb = model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output  # (T, D)
        emb = torch.nn.functional.normalize(emb, dim=-1).mean(dim=0)
        return torch.nn.functional.normalize(emb, dim=0).float().cpu().numpy()

    def score(self, features: Sequence[np.ndarray], titles: Sequence[str]) -> np.ndarray:
        """Cosine similarity of each title embedding with its video embedding, shape (N,)."""
        import torch

        if len(features) != len(titles):
            raise ValueError(f"{len(features)} videos but {len(titles)} titles")
        model, processor = self._model()
        scores = []
        for start in range(0, len(titles), self.config.batch_size):
            batch = list(titles[start:start + self.config.batch_size])
            inputs = processor(text=batch, padding=True, truncation=True, return_tensors="pt").to(self.config.device)
            with torch.inference_mode():
                text = model.get_text_features(**inputs).pooler_output  # (B, D)
            text = torch.nn.functional.normalize(text, dim=-1).float().cpu().numpy()
            video = np.stack(features[start:start + len(batch)])  # (B, D)
            scores.append((text * video).sum(axis=1))
        return np.concatenate(scores) if scores else np.zeros(0)


def make_scorer(config: SimilarityConfig, tokenize: Callable[[str], list[str]],
                rng: np.random.Generator) -> VideoTextScorer:
    """The scorer named by ``config.scorer``: ``"default"`` or a ChineseCLIP checkpoint path."""
    if config.scorer == "default":
        return CooccurrenceScorer(config, tokenize, rng)
    return ChineseClipScorer(config.scorer, config)
