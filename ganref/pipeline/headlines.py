"""The book's headline numbers and cross-chapter benchmarks: one place for all thirteen chapters.

:data:`HEADLINES` names each chapter's handful of headline numbers (with what "better" means) and
:data:`BENCHMARK_ROWS` its rows of the cross-book table, written from the keys the chapters record.
A chapter may also declare them in its own cells (``ganref.setup(..., headlines={...})``,
``ch.report.headline(key, better=...)``, ``ch.report.benchmark(method, column=key, ...)``); those
are stored in its results JSON and win over the entries here. A key the run did not record shows
as missing rather than failing; ``tests/test_chapters.py`` checks that every key named here is
recorded by the chapter's smoke run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Headline:
    """One headline number: the result ``key`` (dotted into dicts), what "better" means, in words."""

    key: str
    better: str
    label: str = ""
    target: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The columns of the cross-book table: column -> (title, what "better" means). The shared
#: benchmarks: the toy mixtures of VEEGAN's Table 1 (modes, high-quality share, reverse KL), the
#: digits protocol of ``ganref.metrics.digit_scores``, and the cost of sampling where it applies.
BENCHMARKS: dict[str, tuple[str, str]] = {
    "ring8_modes": ("ring8 modes (of 8)", "higher"),
    "ring8_high_quality": ("ring8 high-quality share", "higher"),
    "ring8_reverse_kl": ("ring8 reverse KL", "lower"),
    "grid25_modes": ("grid25 modes (of 25)", "higher"),
    "grid25_high_quality": ("grid25 high-quality share", "higher"),
    "grid25_reverse_kl": ("grid25 reverse KL", "lower"),
    "digits_fid": ("digits FID", "lower"),
    "digits_kid": ("digits KID", "lower"),
    "digits_precision": ("digits precision", "higher"),
    "digits_recall": ("digits recall", "higher"),
    "stacked_modes": ("stacked digits modes (of 1,000)", "higher"),
    "stacked_kl": ("stacked digits KL", "lower"),
    "nfe": ("NFE", "lower"),
    "sampling_seconds": ("s per 1,000 grid25 samples", "lower"),
}


def _toys(prefix: str) -> dict[str, str]:
    """The four toy columns of a method whose keys are ``<prefix with {toy}>{modes,high_quality}_mean``."""
    return {f"{toy}_{m}": f"{prefix.format(toy=toy)}{m}_mean" for toy in ("ring8", "grid25")
            for m in ("modes", "high_quality")}


def _digits(prefix: str, suffix: str = "") -> dict[str, str]:
    return {f"digits_{m}": f"{prefix}{m}{suffix}" for m in ("fid", "kid", "precision", "recall")}


def _grid(prefix: str, suffix: str = "", hq: str = "high_quality") -> dict[str, str]:
    """grid25 modes, high-quality share and reverse KL at ``<prefix>{modes,<hq>,kl}<suffix>``."""
    return {"grid25_modes": f"{prefix}modes{suffix}", "grid25_high_quality": f"{prefix}{hq}{suffix}",
            "grid25_reverse_kl": f"{prefix}kl{suffix}"}


H = Headline
#: chapter -> its headline numbers (used when its JSON declares none).
HEADLINES: dict[str, list[Headline]] = {
    "01_vanilla_gan": [
        H("ring8_modes_mean", "higher", "ring8: modes covered (of 8), NS loss, mean of the chapter's seeds"),
        H("ring8_high_quality_mean", "higher", "ring8: share of samples within 3 std of a mode"),
        H("grid25_modes_mean", "higher", "grid25: modes covered (of 25)"),
        H("grid25_high_quality_mean", "higher", "grid25: share of high-quality samples"),
        H("ring8_minimax_modes_mean", "higher", "ring8 modes with the original (minimax) loss"),
        H("digits_fid", "lower", "FID of the digits GAN (8x8 digits, classifier features)"),
        H("dstar_gap", "lower", "gap between the trained D and the closed-form D*"),
    ],
    "02_evaluation": [
        H("gan.fid", "lower", "FID of the chapter's digits GAN"),
        H("gan.precision", "higher", "precision (k = 3) of the digits GAN"),
        H("gan.recall", "higher", "recall (k = 3) of the digits GAN"),
        H("gan_fid_5_draws_std", "lower", "std of FID over 5 draws of the same generator (metric noise)"),
        H("toy_gans.ring8.modes", "higher", "ring8 modes of the chapter's toy GAN"),
        H("toy_gans.grid25.modes", "higher", "grid25 modes of the chapter's toy GAN"),
    ],
    "03_wgan": [
        H("target_modes_mean", "higher", "grid25 modes of the tuned NS + R1/R2 run"),
        H("target_high_quality_mean", "higher", "grid25 high-quality share of the tuned NS + R1/R2 run"),
        H("table_grid25_wgan_gp_modes_mean", "higher", "grid25 modes, WGAN-GP (table budget)"),
        H("table_grid25_r1r2_modes_mean", "higher", "grid25 modes, NS + R1/R2 (table budget)"),
        H("fixed_gap_over_w1_lambda_10", "closer", "WGAN-GP critic's estimate over the exact W1 (lambda 10)", 1.0),
        H("digits_fid", "lower", "FID of WGAN-GP on the digits"),
    ],
    "04_spectral_norm": [
        H("digits_sn_fid", "lower", "FID on the digits with spectral normalization"),
        H("digits_nosn_fid", "lower", "FID on the digits, the same GAN without SN"),
        H("sweep_sn_lower_fid_count", "higher", "optimizer settings (of the sweep) where SN gives the lower FID"),
        H("sn_sigma_converged_rel_error_max", "lower", "relative error of SN's sigma after power iteration converged"),
        H("sn_d_update_seconds_ratio", "lower", "time of a D update with SN over without"),
    ],
    "05_frequency_spectra": [
        H("spectral_gap_transposed", "lower", "spectral gap to real images, transposed-conv generator"),
        H("spectral_gap_nearest", "lower", "spectral gap, nearest-neighbour upsampling"),
        H("spectral_gap_bilinear", "lower", "spectral gap, bilinear upsampling"),
        H("nyquist_power_ratio_transposed", "closer", "power at Nyquist over the real images', transposed conv", 1.0),
        H("classifier_accuracy_transposed", "lower", "spectral classifier accuracy on transposed-conv fakes (0.5: undetectable)"),
        H("classifier_accuracy_bilinear", "lower", "spectral classifier accuracy on bilinear fakes (0.5: undetectable)"),
    ],
    "06_ntk_gans": [
        H("ntk_slope_depth1", "closer", "log-log slope of the empirical NTK's error against width (theory: -1/2)", -0.5),
        H("ntk_rel_error_widest_depth1", "lower", "relative error of the empirical NTK at the widest width"),
        H("particles_sw_ipm", "lower", "sliced W1 of particles to the data after the IPM flow"),
        H("particles_sw_lsgan", "lower", "sliced W1 after the LSGAN flow"),
        H("particles_sw_vanilla", "lower", "sliced W1 after the vanilla-GAN flow"),
    ],
    "07_conditional_gans": [
        H("digits_cgan_intra_fid_mean", "lower", "intra-FID (mean over classes) of the concatenation cGAN"),
        H("digits_acgan_intra_fid_mean", "lower", "intra-FID of ACGAN"),
        H("digits_projection_intra_fid_mean", "lower", "intra-FID of the projection discriminator"),
        H("digits_adcgan_intra_fid_mean", "lower", "intra-FID of ADC-GAN"),
        H("digits_adcgan_gan_test_mean", "higher", "GAN-test: the digits classifier's accuracy on ADC-GAN's samples"),
        H("digits_intra_fid_ratio_best", "lower", "best method's intra-FID over the real data's (target: at most 2)"),
    ],
    "08_ddpm": [
        H("grid25_ddpm1000_modes", "higher", "grid25 modes of the trained DDPM, 1,000 steps"),
        H("grid25_ddpm1000_high_quality", "higher", "grid25 high-quality share, DDPM 1,000 steps"),
        H("grid25_ddim10_eta0_modes", "higher", "grid25 modes, DDIM with 10 steps"),
        H("exact_ddim10_eta0_high_quality", "higher", "high-quality share of DDIM-10 with the exact denoiser"),
        H("digits_ddpm1000_fid", "lower", "digits FID, DDPM 1,000 steps"),
        H("digits_ddim50_over_ddpm1000_fid", "closer", "digits FID of DDIM-50 over DDPM-1000's"),
    ],
    "09_diffusion_gan": [
        H("grid25_diffusion_gan_modes_mean", "higher", "grid25 modes of Diffusion-GAN, mean of the chapter's seeds"),
        H("grid25_ns_gan_modes_mean", "higher", "grid25 modes of the plain NS GAN, same nets and budget"),
        H("grid25_sn_gan.modes.mean", "higher", "grid25 modes of SN-GAN, same nets and budget"),
        H("digits_diffusion_gan.fid.mean", "lower", "digits FID of Diffusion-GAN"),
        H("digits_ns_gan.fid.mean", "lower", "digits FID of the plain NS GAN"),
        H("overhead_seconds_ratio", "lower", "time of a Diffusion-GAN step over a plain GAN step"),
    ],
    "10_ddgan": [
        H("trilemma_ddgan_t4_modes", "higher", "grid25 modes of the denoising diffusion GAN, T = 4"),
        H("trilemma_ddgan_t4_fid", "lower", "digits FID of the denoising diffusion GAN, T = 4"),
        H("trilemma_ddpm1000_fid", "lower", "digits FID of DDPM, 1,000 steps, same data"),
        H("exact_chain_T4_kl", "lower", "reverse KL of the 4-step chain with exact conditionals (the method's ceiling)"),
        H("gaussian_chain_T4_kl", "lower", "reverse KL of the 4-step chain with Gaussian conditionals (DDPM's assumption)"),
        H("ddpm_over_ddgan_T4_grid25_seconds_ratio", "higher", "sampling time of DDPM-1000 over DDGAN T = 4"),
    ],
    "11_distill": [
        H("grid25_dmd2_modes", "higher", "grid25 modes of the DMD2 one-step student"),
        H("grid25_reg_modes", "higher", "grid25 modes of the regression student (noise-image pairs)"),
        H("grid25_dmd2_speedup_vs_ddpm", "higher", "sampling speed-up of the student over the teacher"),
        H("digits_ddim50_fid", "lower", "digits FID of the teacher, DDIM 50 steps"),
        H("digits_reg_lpips_fid", "lower", "digits FID of the perceptual-regression student"),
        H("digits_reg_gan_fid", "lower", "digits FID of the regression + conditional GAN student"),
        H("digits_dmd2_fid", "lower", "digits FID of the DMD2 student"),
        H("digits_best_fid_gap_to_ddim50", "lower", "best digits student's FID over DDIM-50's, minus 1"),
    ],
    "12_compression": [
        H("teacher_fid", "lower", "digits FID of the teacher generator"),
        H("fid_ratio_feature_quarter", "lower", "student FID over the teacher's, feature distillation, 1/4 width"),
        H("fid_ratio_feature_eighth", "lower", "student FID over the teacher's, feature distillation, 1/8 width"),
        H("fid_ratio_dcd_eighth", "lower", "student FID over the teacher's, DCD (D as the distance), 1/8 width"),
        H("mac_reduction_eighth", "higher", "MACs of the teacher over the 1/8-width student's"),
        H("d_vs_pixel_spearman", "higher", "rank correlation of D-feature and pixel distances to the teacher"),
    ],
    "13_r3gan": [
        H("digits_r3gan_modes_mean", "higher", "stacked digits modes (of 1,000) of R3GAN (Config E)"),
        H("digits_r3gan_kl_mean", "lower", "stacked digits KL of R3GAN"),
        H("digits_ns_dcgan_modes_mean", "higher", "stacked digits modes of the NS DCGAN baseline (Config A)"),
        H("record_raw_modes_mean", "higher", "grid25 modes of the record run (raw generator)"),
        H("record_raw_high_quality_mean", "higher", "grid25 high-quality share of the record run"),
        H("landscape_barrier_rpgan_paired", "lower", "loss barrier between modes, paired RpGAN (theory: none)"),
    ],
}
del H

#: chapter -> {method -> {benchmark column -> result key}}: the chapter's rows of the cross-book table.
BENCHMARK_ROWS: dict[str, dict[str, dict[str, str]]] = {
    "01_vanilla_gan": {
        "GAN, non-saturating (ch. 01)": {**_toys("{toy}_"), **_digits("digits_")},
        "GAN, minimax (ch. 01)": {"ring8_modes": "ring8_minimax_modes_mean",
                                  "ring8_high_quality": "ring8_minimax_high_quality_mean"},
    },
    "02_evaluation": {
        "GAN, non-saturating (ch. 02)": {"ring8_modes": "toy_gans.ring8.modes",
                                         "ring8_high_quality": "toy_gans.ring8.high_quality",
                                         "grid25_modes": "toy_gans.grid25.modes",
                                         "grid25_high_quality": "toy_gans.grid25.high_quality",
                                         **_digits("gan.")},
    },
    "03_wgan": {
        "GAN, non-saturating (ch. 03 table)": _toys("table_{toy}_vanilla_"),
        "WGAN, weight clipping": _toys("table_{toy}_wgan_"),
        "WGAN-GP": {**_toys("table_{toy}_wgan_gp_"), **_digits("digits_")},
        "NS + R1/R2": _toys("table_{toy}_r1r2_"),
        "NS + R1/R2, tuned for grid25": {"grid25_modes": "target_modes_mean",
                                         "grid25_high_quality": "target_high_quality_mean"},
    },
    "04_spectral_norm": {
        "SN-GAN": _digits("digits_sn_"),
        "the same GAN without SN": _digits("digits_nosn_"),
    },
    "07_conditional_gans": {
        f"{name} (class-conditional)": _digits(f"digits_{v}_", "_mean")
        for v, name in (("cgan", "cGAN, concatenation"), ("acgan", "ACGAN"), ("projection", "projection cGAN"),
                        ("adcgan", "ADC-GAN"), ("amgan", "AM-GAN"))
    },
    "08_ddpm": {
        **{name: {**_grid(f"grid25_{v}_"), **_digits(f"digits_{v}_"), "nfe": f"grid25_{v}_nfe",
                  "sampling_seconds": f"grid25_{v}_per_1000_seconds"}
           for v, name in (("ddpm1000", "DDPM, 1,000 steps (ch. 08)"), ("ddim50_eta0", "DDIM, 50 steps (ch. 08)"),
                           ("ddim10_eta0", "DDIM, 10 steps (ch. 08)"))},
        "GAN, non-saturating (ch. 08)": {**_grid("grid25_gan_ns_"), **_digits("digits_gan_ns_"),
                                         "nfe": "grid25_gan_ns_nfe"},
    },
    "09_diffusion_gan": {
        name: {**_grid(f"grid25_{v}.", ".mean"), **_digits(f"digits_{v}.", ".mean")}
        for v, name in (("diffusion_gan", "Diffusion-GAN"), ("ns_gan", "GAN, non-saturating (ch. 09)"),
                        ("sn_gan", "SN-GAN (ch. 09)"))
    },
    "10_ddgan": {
        name: {**_grid(f"trilemma_{v}_", hq="hq"), "digits_fid": f"trilemma_{v}_fid",
               "digits_precision": f"trilemma_{v}_precision", "digits_recall": f"trilemma_{v}_recall",
               "nfe": f"trilemma_{v}_nfe", "sampling_seconds": f"trilemma_{v}_grid25_1000_samples_seconds"}
        for v, name in (("ddgan_t1", "denoising diffusion GAN, T = 1"), ("ddgan_t4", "denoising diffusion GAN, T = 4"),
                        ("ddpm1000", "DDPM, 1,000 steps (ch. 10)"), ("ddim10", "DDIM, 10 steps (ch. 10)"),
                        ("onecall_gan", "GAN, one call (ch. 10)"))
    },
    "11_distill": {
        name: {**_digits(f"digits_{d}_"), "nfe": f"digits_{d}_nfe",  # the grid's sampling time, as chapters 08, 10
               **({**_grid(f"grid25_{g}_"), "sampling_seconds": f"grid25_{g}_seconds_per_1000"} if g else {})}
        for g, d, name in (("dmd2", "dmd2", "DMD2 student (one step)"),
                           ("dmd2_nogan", "dmd2_nogan", "DMD2 student without its GAN loss"),
                           ("reg", "reg_mse", "regression student, MSE (noise-sample pairs)"),
                           (None, "reg_lpips", "regression student, perceptual distance"),
                           ("reg_gan", "reg_gan", "regression + conditional GAN student"),
                           ("ddpm", "ddpm", "teacher, DDPM 1,000 steps (ch. 11)"),
                           ("ddim50", "ddim50", "teacher, DDIM 50 steps (ch. 11)"))
    },
    "12_compression": {
        "teacher GAN (ch. 12)": {f"digits_{m}": f"teacher_{m}" for m in ("fid", "kid", "precision", "recall")},
        **{name: _digits(f"table.{v}.") for v, name in (
            ("scratch_w8", "student 1/4 width, from scratch"), ("feature_w8", "student 1/4 width, feature distillation"),
            ("dcd_w8", "student 1/4 width, DCD"))},
    },
    "13_r3gan": {
        **{name: {f"{toy}_{m}": f"toy_{toy}_{v}_{m}_mean" for toy in ("ring8", "grid25") for m in ("modes", "high_quality")}
           | {f"{toy}_reverse_kl": f"toy_{toy}_{v}_kl_mean" for toy in ("ring8", "grid25")}
           for v, name in (("ns", "GAN, non-saturating (ch. 13)"), ("rpgan_r1r2", "RpGAN + R1 + R2 (R3GAN's loss)"),
                           ("wgan_gp", "WGAN-GP (ch. 13)"), ("sngan", "SN-GAN (ch. 13)"))},
        **{name: {"stacked_modes": f"digits_{v}_modes_mean", "stacked_kl": f"digits_{v}_kl_mean"}
           for v, name in (("ns_dcgan", "DCGAN, non-saturating (Config A)"), ("rpgan_r1r2_dcgan", "DCGAN, RpGAN + R1 + R2 (C)"),
                           ("r3gan", "R3GAN (Config E)"))},
        "R3GAN's loss, tuned record run (grid25)": _grid("record_raw_", "_mean"),
    },
}
