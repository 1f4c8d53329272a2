"""The feature extractor of the book: a small CNN trained on scikit-learn's 8x8 digits.

FID, KID, precision/recall and IS need features and class probabilities of images. For 8x8
digits an ImageNet Inception-v3 (Szegedy et al. 2016, arXiv:1512.00567) would be meaningless,
so the book uses a classifier trained on the digits themselves, as Salimans et al. 2016
(arXiv:1606.03498) and Binkowski et al. 2018 (arXiv:1801.01401) recommend when a domain has
its own classifier. Its weights ship with the package (``ganref/assets/digits_cnn.pt``, written
by ``scripts/train_classifier.py``) and load with ``torch.load(weights_only=True)``.

Network: three 3x3 conv layers (16, 32, 64 channels, ReLU, two 2x2 max-pools: 8x8 -> 2x2), a
hidden linear layer of 64 units (ReLU) whose activations are the *features*, and a linear layer
to 10 logits (about 40k parameters, 165 KB). Trained with cross-entropy and Adam (learning rate
3e-3 with cosine decay, 30 epochs, random one-pixel shifts) on the stratified ``train`` split
(:func:`ganref.data.digits`), on CPU with one thread and a fixed seed, so the same seed gives
the same weights on the same machine (about 10 s); the ``test`` split (360 images) is held out
for the reported accuracy (98.3% for the shipped seed 0).

Deviations: the features are 64 ReLU activations of this network, not Inception's 2,048
pool3 activations; metrics computed with them are comparable within this book only.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganref.utils import check_positive_int

WEIGHTS = Path(__file__).parent / "assets" / "digits_cnn.pt"
WEIGHTS_FORMAT = "ganref-digits-cnn-1"
N_FEATURES = 64
N_CLASSES = 10


class DigitsClassifier(nn.Module):
    """CNN for (B, 1, 8, 8) digit images in [-1, 1]: ``features`` (B, 64), ``probs`` (B, 10).

    ``forward`` returns logits. ``features`` and ``probs`` are differentiable; wrap them in
    ``torch.no_grad()`` for evaluation (or use :func:`digit_features`).
    """

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),  # (B, 16, 8, 8)
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, 4, 4)
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 64, 2, 2)
            nn.Flatten(),  # (B, 256)
            nn.Linear(256, N_FEATURES), nn.ReLU(),  # (B, 64): the features
        )
        self.head = nn.Linear(N_FEATURES, N_CLASSES)  # (B, 10) logits

    @staticmethod
    def _check(x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != (1, 8, 8):
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must be digit images of shape (B, 1, 8, 8) in [-1, 1], got {shape}")

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations (B, 64) of images (B, 1, 8, 8)."""
        self._check(x)
        return self.body(x)

    def perceptual(self, x: Tensor) -> Tensor:
        r"""LPIPS-style features (B, 16*64 + 32*64 + 64*16) of images (B, 1, 8, 8), differentiable.

        The three conv layers' ReLU activations :math:`a_l`, each unit-normalized over channels at every
        pixel and scaled by :math:`1/\sqrt{H_l W_l}`, flattened and joined: the squared distance of two
        images' vectors is :math:`\sum_l \frac{1}{H_l W_l}\sum_{h,w} \|\hat a_l(x) - \hat a_l(y)\|^2`,
        LPIPS (Zhang et al. 2018, arXiv:1801.03924, Eq. (1)) with unit weights :math:`w_l = 1` on this
        network's conv layers instead of a learned head on AlexNet/VGG.
        """
        self._check(x)
        parts, h = [], x
        for i, layer in enumerate(self.body[:7]):  # conv1, relu, conv2, relu, pool, conv3, relu
            h = layer(h)
            if i in (1, 3, 6):  # after each ReLU: (B, 16, 8, 8), (B, 32, 8, 8), (B, 64, 4, 4)
                unit = h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)  # LPIPS's channel normalization
                parts.append(unit.flatten(1) / math.sqrt(h.shape[2] * h.shape[3]))
        return torch.cat(parts, dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, 10)."""
        return self.head(self.features(x))

    def probs(self, x: Tensor) -> Tensor:
        """Softmax class probabilities (B, 10)."""
        return self.forward(x).softmax(dim=1)

    def predict(self, x: Tensor) -> Tensor:
        """Predicted digit (B,) int64."""
        with torch.no_grad():
            return self.forward(x).argmax(dim=1)


def accuracy(model: DigitsClassifier, images: Tensor, labels: Tensor, batch_size: int = 512) -> float:
    """Share of ``images`` (N, 1, 8, 8) whose predicted digit equals ``labels`` (N,)."""
    if len(images) != len(labels):
        raise ValueError(f"images has {len(images)} rows but labels has {len(labels)}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        pred = model.predict(images[start:start + batch_size].to(device)).cpu()
        correct += int((pred == labels[start:start + batch_size]).sum())
    model.train(was_training)
    return correct / len(images)


def random_shift(x: Tensor, generator: torch.Generator, max_shift: int = 1) -> Tensor:
    """Translate each image (B, 1, 8, 8) by up to ``max_shift`` pixels per axis; background -1 fills in."""
    max_shift = check_positive_int("max_shift", max_shift, minimum=0)
    b, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)  # (B, 1, H + 2s, W + 2s), -1 is blank paper
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, b), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, :, None].expand(b, h, w)  # (B, H, W)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, :].expand(b, h, w)
    return padded[torch.arange(b)[:, None, None], 0, rows, cols].unsqueeze(1)  # (B, 1, H, W)


def train_classifier(seed: int = 0, epochs: int = 30, batch_size: int = 64, lr: float = 3e-3,
                     weight_decay: float = 1e-4, augment: bool = True,
                     progress: bool = False) -> tuple[DigitsClassifier, float]:
    """Train the digits CNN deterministically on CPU; return it (eval mode) and its test accuracy.

    Runs with ``torch.set_num_threads(1)`` (restored afterwards) and draws the initial weights
    and the minibatch order from generators seeded with ``seed``, so a seed fixes the weights.

    Args:
        seed: seed of the initialisation and of the data order.
        epochs: passes over the 1,437 training images.
        batch_size: images per Adam step.
        lr, weight_decay: Adam's initial learning rate (cosine decay to 0) and L2 weight decay.
        augment: shift each training image by up to one pixel (:func:`random_shift`).
        progress: print the loss and test accuracy after each epoch.
    Returns:
        (model, accuracy on the held-out ``test`` split of :func:`ganref.data.digits`).
    """
    from ganref.data import digits

    seed = check_positive_int("seed", seed, minimum=0)
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    x_train, y_train = digits(split="train")
    x_test, y_test = digits(split="test")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):  # seed the initialisation without touching the caller's stream
            torch.manual_seed(seed)
            model = DigitsClassifier()
        generator = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        steps = epochs * -(-len(x_train) // batch_size)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * t / steps)))  # cosine
        model.train()
        for epoch in range(epochs):
            order = torch.randperm(len(x_train), generator=generator)
            total = 0.0
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                x = random_shift(x_train[idx], generator) if augment else x_train[idx]
                loss = F.cross_entropy(model(x), y_train[idx])  # -log p(y | x)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item() * len(idx)
            if progress:
                acc = accuracy(model, x_test, y_test)
                print(f"epoch {epoch + 1:3d}  loss {total / len(order):.4f}  test accuracy {acc:.4f}")
        model.eval()
        return model, accuracy(model, x_test, y_test)
    finally:
        torch.set_num_threads(threads)


def save_classifier(model: DigitsClassifier, path: str | os.PathLike = WEIGHTS, **info: float | int | str) -> None:
    """Write ``model``'s weights atomically (temporary file, then rename), with ``info`` beside them."""
    from ganref.checkpoint import atomic_save

    plain: dict[str, float | int | str] = {}
    for key, value in info.items():  # plain Python types only, so that weights_only=True can load them
        if isinstance(value, str):
            plain[key] = str(value)  # e.g. torch.__version__ is a str subclass that weights_only refuses
        elif isinstance(value, (bool, int, np.integer)):
            plain[key] = int(value)
        elif isinstance(value, (float, np.floating)):
            plain[key] = float(value)
        else:
            raise ValueError(f"info {key!r} must be a str, int or float, got {type(value).__name__}")
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    atomic_save({"format": WEIGHTS_FORMAT, "state_dict": state, **plain}, path)


def load_classifier(device: str | torch.device = "cpu", path: str | os.PathLike | None = None) -> DigitsClassifier:
    """Load the shipped digits classifier (``torch.load(weights_only=True)``), in eval mode.

    Args:
        device: where to put it (``"auto"`` as in :func:`ganref.utils.device`).
        path: a weights file written by :func:`save_classifier`; default the shipped one.
    """
    from ganref.utils import device as pick_device

    dev = pick_device(device)
    path = Path(WEIGHTS if path is None else path)
    if not path.is_file():
        raise FileNotFoundError(f"classifier weights {str(path)!r} do not exist; run scripts/train_classifier.py")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"classifier weights {str(path)!r} could not be read: {err}") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{str(path)!r} is not a ganref digits classifier (expected format {WEIGHTS_FORMAT!r})")
    model = DigitsClassifier()
    model.load_state_dict(ckpt["state_dict"])
    return model.to(dev).eval()


# ----------------------------------------------------------------------------- convenience


def _images(name: str, images: object, channels: int | None = 1) -> Tensor:
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, Tensor):
        raise ValueError(f"{name} must be a tensor or numpy array of shape (N, 1, 8, 8), got {type(images).__name__}")
    want = "(N, 1, 8, 8)" if channels == 1 else "(N, C, 8, 8)"
    if images.ndim != 4 or tuple(images.shape[2:]) != (8, 8) or (channels is not None and images.shape[1] != channels) \
            or images.shape[0] < 1 or images.shape[1] < 1:
        raise ValueError(f"{name} must have shape {want} (8x8 digit images in [-1, 1]), got {tuple(images.shape)}")
    if not torch.is_floating_point(images):
        raise ValueError(f"{name} must be floating point images in [-1, 1], got dtype {images.dtype}")
    if not torch.isfinite(images).all():
        raise ValueError(f"{name} holds non-finite values (NaN or inf)")
    return images


def _batched(fn, images: Tensor, classifier: DigitsClassifier, batch_size: int) -> np.ndarray:
    batch_size = check_positive_int("batch_size", batch_size)
    device = next(classifier.parameters()).device
    outs = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].to(device=device, dtype=torch.float32)
            outs.append(fn(batch).cpu())
    return torch.cat(outs).double().numpy()


def digit_features(images: object, classifier: DigitsClassifier | None = None, batch_size: int = 512) -> np.ndarray:
    """Features (N, 64) float64 of digit images (N, 1, 8, 8) in [-1, 1], for FID/KID/precision-recall.

    Args:
        images: tensor or array; moved to the classifier's device batch by batch.
        classifier: default :func:`load_classifier` on CPU.
        batch_size: images per forward pass.
    """
    images = _images("images", images)
    classifier = load_classifier() if classifier is None else classifier
    return _batched(classifier.features, images, classifier, batch_size)


def digit_probs(images: object, classifier: DigitsClassifier | None = None, batch_size: int = 512) -> np.ndarray:
    """Class probabilities (N, 10) float64 of digit images (N, 1, 8, 8), for the Inception Score."""
    images = _images("images", images)
    classifier = load_classifier() if classifier is None else classifier
    return _batched(classifier.probs, images, classifier, batch_size)


def digit_labels(images: object, classifier: DigitsClassifier | None = None, batch_size: int = 512) -> np.ndarray:
    """Predicted digit of every channel: images (N, C, 8, 8) -> labels (N, C) int64.

    For stacked digits (C = 3) the result feeds :func:`ganref.metrics.stacked_modes`.
    """
    images = _images("images", images, channels=None)
    classifier = load_classifier() if classifier is None else classifier
    n, c = images.shape[:2]
    flat = images.reshape(n * c, 1, 8, 8)  # channel j of image i -> row i * C + j
    logits = _batched(classifier.forward, flat, classifier, batch_size)  # (N * C, 10)
    return logits.argmax(axis=1).reshape(n, c)
