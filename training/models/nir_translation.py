"""Shen et al.'s Cross-modal Translation Network (CTN), "A Depth Estimation Framework Based on
Unsupervised Learning and Cross-Modal Translation" (``method: nir_ctn``): a CycleGAN that
turns near-infrared images X into pseudo-RGB images Y, so that an RGB depth network (the
stereo-trained DPN, training/models/monodepth.py) also works for NIR cameras in bad light:

    NIR image -> CTN G1 -> pseudo-RGB -> DPN -> disparity -> metric depth

The translation itself is the two-domain core of training/models/two_domain.py
(``CycleTranslation``: G1: NIR (1 channel) -> RGB (3), G2: RGB -> NIR, PatchGAN D_X and D_Y,
LSGAN, cycle and identity losses, Adam with beta1 = 0.5, the image history), trained, saved
and exported as a method by its ``TranslationMethod`` (which also gives ``translate``: NIR in
[-1, 1] -> pseudo-RGB in [-1, 1], G1 in eval mode). This file only adds what is specific to
NIR -> RGB: the two image domains and their sampling, training crops, the exported spec, and
depth through a second model for validation.

Objective (CycleTranslation, eq. 6 of the contrastive CycleGAN with its PatchNCE weights at
0, i.e. Zhu et al.'s CycleGAN, which is what Shen et al. use):

    L = L_GAN(G1, D_Y) + L_GAN(G2, D_X)                   LSGAN
      + l_cyc (||G2(G1(x)) - x||_1 + ||G1(G2(y)) - y||_1)  cycle consistency
      + l_id (||G1(gray(y)) - y||_1 + ||G2(x x3) - x||_1)  identity, Zhu et al.'s form
                                                            (identity_inputs: target)

Zhu et al.'s identity term feeds G1 the gray version of an RGB image (channel mean) and asks
for that RGB image back: it anchors colours to what a gray intensity suggests and keeps G1
close to a structure-preserving colourisation. The paper form (||x - G1(x)||) would instead
ask the pseudo-RGB's mean to equal the NIR intensity, which is wrong where NIR and visible
reflectance differ (vegetation is bright in NIR). Its weight is 5 = 0.5 x lambda_cyc, as
CycleGAN's code applies it (lambda_identity scales the cycle weight there); at 0.5 the demo
generator hallucinated street scenes unrelated to its input (pseudo-RGB SSIM 0.02,
models/ctn_synthetic.md).
The PatchNCE terms of the contrastive CycleGAN stay available through lambda_nce_x/y (the
synthetic demo uses lambda_nce_x = 1: x vs G1(x) through G1's encoder keeps structure).

Domains: X = NIR images (sample key ``nir``, or ``right_nir`` for PittsStereo-RGBNIR's RGB
(left) / NIR (right) rig), Y = RGB images (``rgb``), from disjoint halves of the dataset
(``UnpairedDomains``), each flipped and cropped on its own. Registered pairs (the synthetic
data) are only used together at validation/evaluation, to measure the translation.

Export: G1 at ``input_height`` x ``input_width`` (the DPN's input size is a good choice: the
pseudo-RGB then needs no resizing), spec ``input_kind: nir``, output ``pseudo_rgb`` of kind
``translated_image`` (RGB in ``output_range`` [-1, 1]); depth_nodes.runtime.nir_estimator
chains it with any RGB depth model. The generator is fully convolutional, so training on
``crop_height`` x ``crop_width`` crops of frames at the export size is the CycleGAN recipe
(train on crops, translate whole frames) at a fraction of the cost.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from depth_nodes.core.model_spec import ModelSpec
from depth_nodes.core.preprocess import image_to_tensor, resize_image
from depth_nodes.runtime.nir_estimator import translated_image_to_rgb8
from training.models.base import TrainContext, depth_targets, require_keys
from training.models.two_domain import TranslationConfig, TranslationMethod, UnpairedDomains

NIR_KEYS = ('nir', 'right_nir')
# Images in [-1, 1]: x = (pixel / max - 0.5) / 0.5, CycleGAN's normalisation.
HALF = (0.5,)


@dataclass(frozen=True)
class NirTranslationConfig(TranslationConfig):
    """X = NIR (1 channel), Y = RGB (3). Defaults are small (a quick export for the tests);
    training/configs/nir_ctn_pitts_rgbnir.yaml holds the paper-size (CycleGAN 256) settings."""
    x_channels: int = 1
    y_channels: int = 3
    input_height: int = 128               # exported size (the DPN demo's input)
    input_width: int = 256
    crop_height: int = 0                  # training crops of the input-size frames
    crop_width: int = 0                   # (0: whole frames)
    generator_channels: int = 16
    generator_blocks: int = 4
    discriminator_channels: int = 16
    lambda_nce_x: float = 0.0             # CycleGAN (Shen et al.): no PatchNCE terms
    lambda_nce_y: float = 0.0
    identity_inputs: str = 'target'       # Zhu et al.: ||y - G1(gray(y))||_1 (docstring)
    lambda_identity: float = 5.0          # CycleGAN's code: lambda_identity x lambda_cycle
    nce_layers: tuple[str, ...] = ('input', 'down1', 'down2', 'block1', 'block4')
    nce_patches: int = 64
    projection_dim: int = 64
    nir_key: str = 'nir'                  # sample key of the NIR images (NIR_KEYS)
    disjoint_domains: bool = True         # X and Y from disjoint halves of the data
    flip: bool = True                     # random horizontal flips, per domain
    # Validation depth through a second model: an exported RGB depth model (path or name
    # under models/), fed the pseudo-RGB. '' = predict_depth is unavailable.
    depth_model: str = ''

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.x_channels, self.y_channels) != (1, 3):
            raise ValueError('nir_ctn translates NIR (1 channel) to RGB (3 channels): '
                             'x_channels must be 1 and y_channels 3')
        if self.nir_key not in NIR_KEYS:
            raise ValueError(f"nir_key '{self.nir_key}' not in {NIR_KEYS}")
        self.check_image_size('input', self.input_height, self.input_width)
        if (self.crop_height, self.crop_width) != (0, 0):
            self.check_image_size('crop', self.crop_height, self.crop_width)
        if self.crop_height > self.input_height or self.crop_width > self.input_width:
            raise ValueError(f'crop {self.crop_width}x{self.crop_height} exceeds the input '
                             f'{self.input_width}x{self.input_height}')

    @property
    def crop_size(self) -> tuple[int, int]:
        """(height, width) of the training images."""
        if self.crop_height and self.crop_width:
            return self.crop_height, self.crop_width
        return self.input_height, self.input_width


def sample_nir(sample: Mapping[str, Any], key: str) -> tuple[np.ndarray, str]:
    """A sample's NIR image and its ROS encoding (8- or 16-bit single channel)."""
    image = np.asarray(sample[key])
    if image.ndim != 2 or image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"sample '{sample.get('name', '?')}': {key} must be an (H, W) uint8 "
                         f'or uint16 image, got {image.dtype} {image.shape}')
    return image, 'mono8' if image.dtype == np.uint8 else 'mono16'


class UnpairedNirRgb:
    """Unpaired (NIR, RGB) training items: the NIR image of one sample and the RGB image of
    another from the other half of the data (``UnpairedDomains``), each resized to the input
    size (as the node's pre-processing does), then flipped with probability 1/2 and randomly
    cropped on its own. Randomness: numpy's global generator, which the trainer seeds and
    checkpoints (per worker in DataLoader workers)."""

    def __init__(self, dataset: Sequence, seed: int, config: NirTranslationConfig):
        self.pairs = UnpairedDomains(dataset, seed, config.disjoint_domains, flip=False)
        self.config = config

    def __len__(self) -> int:
        return len(self.pairs)

    def _augment(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.config
        image = resize_image(image, c.input_height, c.input_width)
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if c.flip and rng.random() < 0.5:
            image = image[:, ::-1]
        height, width = c.crop_size
        top = int(rng.integers(0, c.input_height - height + 1))
        left = int(rng.integers(0, c.input_width - width + 1))
        return np.ascontiguousarray(image[top:top + height, left:left + width])

    def __getitem__(self, index: int) -> dict[str, Any]:
        pair = self.pairs[index]
        x_sample, y_sample = pair['domain_x'], pair['domain_y']
        require_keys(x_sample, (self.config.nir_key,), NirTranslationMethod.name)
        require_keys(y_sample, ('rgb',), NirTranslationMethod.name)
        nir, _ = sample_nir(x_sample, self.config.nir_key)
        rng = np.random.default_rng(np.random.randint(2 ** 31))
        return {'unpaired_nir': self._augment(nir, rng),
                'unpaired_rgb': self._augment(np.asarray(y_sample['rgb']), rng),
                'name': f"{x_sample.get('name', '?')} | {y_sample.get('name', '?')}"}


class NirTranslationMethod(TranslationMethod):
    name = 'nir_ctn'
    config_class = NirTranslationConfig
    sample_keys = ('nir', 'rgb')

    def __init__(self, config: NirTranslationConfig, context: TrainContext = TrainContext()):
        super().__init__(config, context)
        self._depth_estimator = None

    def training_dataset(self, dataset: Sequence, seed: int) -> Sequence:
        return UnpairedNirRgb(dataset, seed, self.config)

    # --- batches -----------------------------------------------------------------------
    def _spec_at(self, height: int, width: int, channels: int) -> ModelSpec:
        return dataclasses.replace(self.model_spec(), input_height=height, input_width=width,
                                   input_channels=channels, mean=HALF * channels,
                                   std=HALF * channels)

    def nir_batch(self, images: Sequence[np.ndarray], height: int, width: int
                  ) -> torch.Tensor:
        """NIR images -> (B, 1, height, width) in [-1, 1], the node's pre-processing."""
        spec = self._spec_at(height, width, 1)
        return torch.from_numpy(np.concatenate([
            image_to_tensor(im, 'mono8' if im.dtype == np.uint8 else 'mono16', spec)
            for im in images]))

    def rgb_batch(self, images: Sequence[np.ndarray], height: int, width: int
                  ) -> torch.Tensor:
        """RGB images -> (B, 3, height, width) in [-1, 1]."""
        spec = self._spec_at(height, width, 3)
        return torch.from_numpy(np.concatenate([image_to_tensor(im, 'rgb8', spec)
                                                for im in images]))

    def make_batch(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Unpaired items (training) -> x (NIR), y (RGB) crops; plain samples (validation) ->
        the registered x, y of one frame at the input size, plus log_depth / valid when the
        samples have depth."""
        c = self.config
        if all('unpaired_nir' in s for s in samples):
            height, width = c.crop_size
            return {'x': self.nir_batch([s['unpaired_nir'] for s in samples], height, width),
                    'y': self.rgb_batch([s['unpaired_rgb'] for s in samples], height, width)}
        for sample in samples:
            require_keys(sample, (c.nir_key, 'rgb'), self.name)
        batch = {'x': self.nir_batch([sample_nir(s, c.nir_key)[0] for s in samples],
                                     c.input_height, c.input_width),
                 'y': self.rgb_batch([s['rgb'] for s in samples], c.input_height,
                                     c.input_width)}
        if all(s.get('depth') is not None for s in samples):
            batch['log_depth'], batch['valid'] = depth_targets(
                [s['depth'] for s in samples], c.input_height, c.input_width, 1e-3, 1e6)
        return batch

    # --- depth through a second model ----------------------------------------------------
    def depth_estimator(self):
        """The runtime estimator of ``depth_model`` (loaded once), for predict_depth."""
        if not self.config.depth_model:
            raise ValueError('nir_ctn predicts depth only through an RGB depth model: set '
                             'method.options.depth_model (e.g. dpn_synthetic), or evaluate '
                             'with python -m training.evaluate_nir_translation')
        if self._depth_estimator is None:
            from depth_nodes.runtime.engine import EngineOptions
            from depth_nodes.runtime.estimator import MonoDepthEstimator
            from depth_nodes.runtime.model import open_model
            model = open_model(self.config.depth_model, 'onnxruntime',
                               EngineOptions(intra_op_threads=1))
            self._depth_estimator = MonoDepthEstimator(model, output_resolution='input')
        return self._depth_estimator

    @torch.no_grad()
    def predict_depth(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """NIR -> pseudo-RGB (8-bit, as the node publishes it) -> depth_model, (B, h, w) m at
        the input size. Without camera intrinsics: the depth model's spec gives fx / W."""
        estimator = self.depth_estimator()
        pseudo_rgb = translated_image_to_rgb8(self.translate(batch['x']).cpu().numpy(),
                                              self.model_spec().output_range)
        depths = [estimator.estimate(image, 'rgb8', depth_range=(1e-3, 1e6)).depth
                  for image in pseudo_rgb]
        return torch.from_numpy(np.stack(depths)).to(batch['x'].device)

    def model_spec(self) -> ModelSpec:
        c = self.config
        return ModelSpec(method=self.name, input_kind='nir', input_names=('image',),
                         input_height=c.input_height, input_width=c.input_width,
                         input_channels=1, color_order='rgb', mean=HALF, std=HALF,
                         output_name='pseudo_rgb', output_kind='translated_image',
                         output_range=(-1.0, 1.0),
                         extras={'translation': 'G1: NIR -> RGB (Shen et al. CTN)',
                                 'output_channels': 3, 'output_color_order': 'rgb'})
