"""The two-domain translation core shared by the contrastive CycleGAN depth model
(training/models/cyclegan.py, ``method: cyclegan``) and Shen et al.'s NIR -> RGB CTN
(training/models/nir_translation.py, ``method: nir_ctn``). It knows nothing about depth.

``CycleTranslation`` -- G1: X -> Y and G2: Y -> X (training/networks/resnet_generator.py),
D_X and D_Y (training/networks/patchgan.py, instance norm), projection heads H_X on G1's
encoder and H_Y on G2's (training/networks/projection_head.py), the losses of training/losses
(lsgan, cycle, identity, patchnce), Adam with beta1 = 0.5 and CycleGAN's linear learning-rate
decay, and a history of generated images for the discriminators:

    translation = CycleTranslation(TranslationConfig(x_channels=1, y_channels=3, ...), device)
    logs = translation.training_step(x, y, step)    # x: (B, C_X, H, W), y: (B, C_Y, H, W)
    fake_y = translation.generator_xy(x)             # in [-1, 1]

``training_step`` minimises eq. 6 of Suarez, Carpio and Sappa, "A Deep Learning Based
Approach for Synthesizing Realistic Depth Maps", over the generators and heads, then eq. 4
over the discriminators (halved, as CycleGAN does):

    L = l1 (L_GAN(G1, D_Y) + L_GAN(G2, D_X))        LSGAN, eq. 5
      + l2 L_PatchNCE(G1, H_X, X)                    x vs G1(x) through G1's encoder, eq. 3
      + l3 L_PatchNCE(G2, H_Y, Y)                    y vs G2(y) through G2's encoder, eq. 3
      + l4 L_cyc(G1, G2)                             eq. 1
      + l5 L_id(G1, G2)                              eq. 2

Not in the paper, against "brighter is nearer" (issue 21): ``retone_g1_inputs`` feeds G1 a
random re-toning T(x) and asks the cycle for the untouched x (``random_tone_remap``).

Baselines through options only: plain CycleGAN is lambda_nce_x = lambda_nce_y = 0 (no heads
are built); CUT-style one-sided (``one_sided: true``) builds only G1, D_Y and H_X, drops the
cycle term, and its l3 term is CUT's identity NCE, y vs G1(y) through G1's encoder.

Channels: where a generator output or an input of one domain is fed to an encoder or compared
with an image of the other (PatchNCE on G1(x) through G1's encoder, identity, CUT's G1(y)),
``match_channels`` (training/losses/identity.py) repeats 1 channel to C or averages C to 1.

``UnpairedDomains`` -- unpaired (X sample, Y sample) items from one dataset, for both methods.

``TranslationMethod`` -- a ``CycleTranslation`` as a training method (one process, its
networks and optimizers, G1 in eval mode as ``translate`` and as the exported network, the
image history in checkpoints); the base of ``CycleGANMethod`` and ``NirTranslationMethod``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.datasets.augment import random_horizontal_flip
from training.losses.cycle import CycleConsistencyLoss
from training.losses.identity import IdentityLoss, match_channels
from training.losses.lsgan import LSGANDiscriminatorLoss, LSGANGeneratorLoss
from training.losses.patchnce import MultilayerPatchNCELoss
from training.models.base import DepthMethod, TrainContext, linear_decay_factor
from training.networks.patchgan import PatchGANDiscriminator
from training.networks.projection_head import PatchProjectionHead
from training.networks.resnet_generator import NORMS, ResnetGenerator, encoder_layer_names


IDENTITY_INPUTS = ('paper', 'target')


@dataclass(frozen=True)
class TranslationConfig:
    """Networks, objective (eq. 6) and optimisation of a two-domain translation.

    Defaults are the paper's 256x256 settings (CycleGAN's networks, CUT's PatchNCE)."""
    x_channels: int = 1
    y_channels: int = 1
    generator_channels: int = 64          # ngf
    generator_blocks: int = 9             # residual blocks (9 for 256x256 inputs)
    generator_downsampling: int = 2
    discriminator_channels: int = 64      # ndf
    discriminator_layers: int = 3         # 70x70 PatchGAN
    norm: str = 'instance'
    one_sided: bool = False               # CUT: G1, D_Y and H_X only, no cycle term
    lambda_gan: float = 1.0               # l1: LSGAN generator terms
    lambda_nce_x: float = 1.0             # l2: PatchNCE on X (x vs G1(x))
    lambda_nce_y: float = 1.0             # l3: PatchNCE on Y (y vs G2(y); CUT: y vs G1(y))
    lambda_cycle: float = 10.0            # l4: cycle consistency
    lambda_identity: float = 0.5          # l5: identity
    identity_inputs: str = 'paper'        # paper: ||x - G1(x)||; target: ||y - G1(y)|| (Zhu)
    nce_layers: tuple[str, ...] = ('input', 'down1', 'down2', 'block1', 'block5')
    nce_patches: int = 256                # S_l, locations sampled per layer
    nce_temperature: float = 0.07         # tau
    projection_dim: int = 256             # H's output size
    lr: float = 2.0e-4
    adam_betas: tuple[float, float] = (0.5, 0.999)   # the paper's beta1 = 0.5
    lr_constant_steps: int = 0            # iterations at lr, then linear decay to 0 over
    lr_decay_steps: int = 0               # lr_decay_steps (0 = constant lr throughout)
    history_size: int = 50                # generated images D sees again (0 = none)
    # Not in the paper (False = off): G1 always sees a randomly re-toned input T(x)
    # (random_tone_remap: a random tone curve, not necessarily monotone, and a smooth light
    # field), and the cycle asks G2 to rebuild the untouched x from G1(T(x)) -- and G1 to
    # rebuild y from G1(T(G2(y))). The gray level of T(x) then carries nothing G2 can use,
    # so the cycle no longer rewards a G1 that copies brightness ("brighter is nearer").
    retone_g1_inputs: bool = False

    def __post_init__(self) -> None:
        if min(self.x_channels, self.y_channels) < 1:
            raise ValueError('x_channels and y_channels must be >= 1')
        if self.norm not in NORMS:
            raise ValueError(f"norm '{self.norm}' not in {NORMS}")
        if self.identity_inputs not in IDENTITY_INPUTS:
            raise ValueError(f"identity_inputs '{self.identity_inputs}' not in "
                             f'{IDENTITY_INPUTS}')
        weights = (self.lambda_gan, self.lambda_nce_x, self.lambda_nce_y, self.lambda_cycle,
                   self.lambda_identity)
        if min(weights) < 0:
            raise ValueError('loss weights must be >= 0')
        if self.one_sided and (self.lambda_cycle > 0 or
                               (self.lambda_identity > 0 and self.identity_inputs == 'paper')):
            raise ValueError('one_sided (CUT) has no G2: set lambda_cycle: 0 and either '
                             "lambda_identity: 0 or identity_inputs: target")
        if min(self.nce_patches, self.history_size, self.lr_constant_steps,
               self.lr_decay_steps) < 0:
            raise ValueError('nce_patches, history_size and lr steps must be >= 0')
        if self.uses_nce:
            layers = encoder_layer_names(self.generator_downsampling, self.generator_blocks)
            unknown = [name for name in self.nce_layers if name not in layers]
            if unknown or not self.nce_layers:
                raise ValueError(f'nce_layers {list(self.nce_layers)}: need at least one of '
                                 f'the generator encoder layers {list(layers)}')

    @property
    def uses_nce(self) -> bool:
        return self.lambda_nce_x > 0 or self.lambda_nce_y > 0

    @property
    def translation(self) -> 'TranslationConfig':
        """This config's translation fields alone (a method config subclasses this one)."""
        names = [f.name for f in dataclasses.fields(TranslationConfig)]
        return TranslationConfig(**{n: getattr(self, n) for n in names})

    def check_image_size(self, name: str, height: int, width: int) -> None:
        """The generators take images whose sides divide by 2^generator_downsampling."""
        factor = 2 ** self.generator_downsampling
        if min(height, width) < 1 or height % factor or width % factor:
            raise ValueError(f'{name} size {width}x{height} must be positive and divisible '
                             f'by {factor} (2^generator_downsampling)')

    def lr_factor(self, step: int) -> float:
        """CycleGAN's schedule: 1 for lr_constant_steps, then linearly down to 0."""
        return linear_decay_factor(step, self.lr_constant_steps, self.lr_decay_steps)


class ImageHistory:
    """CycleGAN's image pool (Shrivastava et al.): a discriminator is shown, with probability
    1/2, a generated image from earlier iterations instead of the newest one, which damps
    oscillation between G and D. Uses torch's global generator (checkpointed)."""

    def __init__(self, size: int):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand(())) < 0.5:
                index = int(torch.randint(len(self.images), ()))
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.cat(out)

    def state(self) -> torch.Tensor:
        return torch.cat(self.images) if self.images else torch.zeros(0)

    def load(self, images: torch.Tensor, device: torch.device) -> None:
        self.images = [im.unsqueeze(0).to(device) for im in images][:self.size]


def random_tone_remap(x: torch.Tensor, segments: int = 4,
                      illumination_std: float = 0.5) -> torch.Tensor:
    """(B, C, H, W) images in [-1, 1] -> re-toned copies in [-1, 1], a new T per image
    (the same on every channel): a tone curve piecewise linear through ``segments`` + 1
    knots at evenly spaced input levels, their output levels uniform in [0, 1] (rising,
    falling or neither: it cannot be undone), then a smooth multiplicative light field
    (a 3x3 grid of log gains, standard deviation ``illumination_std``, bicubic over the
    image). Uses torch's global generator (checkpointed)."""
    b, _, h, w = x.shape
    u = ((x + 1.0) / 2.0).clamp(0.0, 1.0)
    knots = torch.rand(b, segments + 1, device=x.device)     # output level at knot k/segments
    position = u.flatten(1) * segments
    left = position.floor().clamp(max=segments - 1)
    low, high = knots.gather(1, left.long()), knots.gather(1, left.long() + 1)
    u = (low + (position - left) * (high - low)).view_as(u)
    log_gain = torch.randn(b, 1, 3, 3, device=x.device) * illumination_std
    field = F.interpolate(log_gain, size=(h, w), mode='bicubic', align_corners=True).exp()
    return (u * field).clamp(0.0, 1.0) * 2.0 - 1.0


def set_requires_grad(modules: Sequence[nn.Module], flag: bool) -> None:
    for module in modules:
        module.requires_grad_(flag)


class CycleTranslation:
    """Two-domain translation networks, losses and optimizers (see the module docstring)."""

    def __init__(self, config: TranslationConfig, device: torch.device = torch.device('cpu')):
        c = self.config = config
        self.device = device

        def generator(cin: int, cout: int) -> ResnetGenerator:
            return ResnetGenerator(cin, cout, c.generator_channels, c.generator_blocks,
                                   c.generator_downsampling, c.norm).to(device)

        def discriminator(channels: int) -> PatchGANDiscriminator:
            return PatchGANDiscriminator(channels, c.discriminator_channels,
                                         c.discriminator_layers, c.norm).to(device)

        def head(gen: ResnetGenerator) -> PatchProjectionHead:
            return PatchProjectionHead([gen.feature_channels(n) for n in c.nce_layers],
                                       c.projection_dim).to(device)

        self.generator_xy = generator(c.x_channels, c.y_channels)                # G1
        self.discriminator_y = discriminator(c.y_channels)                      # D_Y
        self.generator_yx = None if c.one_sided else generator(c.y_channels, c.x_channels)
        self.discriminator_x = None if c.one_sided else discriminator(c.x_channels)
        # H_X serves G1's encoder (and CUT's identity NCE); H_Y serves G2's encoder.
        self.projection_x = head(self.generator_xy) if c.uses_nce else None
        self.projection_y = (head(self.generator_yx)
                             if c.lambda_nce_y > 0 and not c.one_sided else None)

        self.gan_generator_loss = LSGANGeneratorLoss()
        self.gan_discriminator_loss = LSGANDiscriminatorLoss()
        self.cycle_loss = CycleConsistencyLoss()
        self.identity_loss = IdentityLoss()
        self.patchnce_loss = MultilayerPatchNCELoss(c.nce_temperature, c.nce_patches)

        generator_side = [m for m in (self.generator_xy, self.generator_yx, self.projection_x,
                                      self.projection_y) if m is not None]
        self._optimizers = {
            'generators': self._adam(generator_side),
            'discriminators': self._adam(self.discriminators),
        }
        self.history_x = ImageHistory(c.history_size)   # generated X images for D_X
        self.history_y = ImageHistory(c.history_size)   # generated Y images for D_Y

    def _adam(self, modules: Sequence[nn.Module]) -> torch.optim.Optimizer:
        params = [p for m in modules for p in m.parameters()]
        return torch.optim.Adam(params, lr=self.config.lr, betas=self.config.adam_betas)

    @property
    def discriminators(self) -> list[nn.Module]:
        return [m for m in (self.discriminator_y, self.discriminator_x) if m is not None]

    def networks(self) -> dict[str, nn.Module]:
        named = {'generator_xy': self.generator_xy, 'generator_yx': self.generator_yx,
                 'discriminator_x': self.discriminator_x,
                 'discriminator_y': self.discriminator_y,
                 'projection_x': self.projection_x, 'projection_y': self.projection_y}
        return {k: v for k, v in named.items() if v is not None}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return dict(self._optimizers)

    def set_lr(self, step: int) -> float:
        lr = self.config.lr * self.config.lr_factor(step)
        for optimizer in self._optimizers.values():
            for group in optimizer.param_groups:
                group['lr'] = lr
        return lr

    # --- the objective ---------------------------------------------------------------
    def patchnce(self, generator: ResnetGenerator, head: PatchProjectionHead,
                 source: torch.Tensor, translated: torch.Tensor) -> torch.Tensor:
        """L_PatchNCE between an input and its translation, both through ``generator``'s
        encoder (the translation brought to the encoder's input channels)."""
        layers = self.config.nce_layers
        source_features = generator.encode(source, layers)
        translated_features = generator.encode(
            match_channels(translated, generator.in_channels), layers)
        return self.patchnce_loss(source_features, translated_features, head)

    def generator_losses(self, x: torch.Tensor, y: torch.Tensor) -> tuple[
            torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(eq. 6 total, its terms, the generated images) for one batch of x and y."""
        c = self.config
        g1, g2 = self.generator_xy, self.generator_yx
        retone = random_tone_remap if c.retone_g1_inputs else (lambda images: images)
        x_in = retone(x)
        fake_y = g1(x_in)
        fakes = {'fake_y': fake_y}
        terms = {'gan_y': self.gan_generator_loss(self.discriminator_y(fake_y))}
        if g2 is not None:
            fake_x = fakes['fake_x'] = g2(y)
            terms['gan_x'] = self.gan_generator_loss(self.discriminator_x(fake_x))
        total = c.lambda_gan * sum(terms.values())
        if c.lambda_nce_x > 0:
            terms['nce_x'] = self.patchnce(g1, self.projection_x, x_in, fake_y)
            total = total + c.lambda_nce_x * terms['nce_x']
        if c.lambda_nce_y > 0:
            if g2 is not None:
                terms['nce_y'] = self.patchnce(g2, self.projection_y, y, fake_x)
            else:   # CUT: G1 on a Y image should change nothing of its patches
                y_in = match_channels(y, g1.in_channels)
                terms['nce_y'] = self.patchnce(g1, self.projection_x, y_in, g1(y_in))
            total = total + c.lambda_nce_y * terms['nce_y']
        if c.lambda_cycle > 0:
            terms['cycle'] = self.cycle_loss(x, g2(fake_y), y, g1(retone(fake_x)))
            total = total + c.lambda_cycle * terms['cycle']
        if c.lambda_identity > 0:
            if c.identity_inputs == 'paper':     # ||x - G1(x)|| + ||y - G2(y)||, eq. 2
                terms['identity'] = self.identity_loss(x, fake_y, y, fake_x)
            else:                                 # ||y - G1(y)|| (+ ||x - G2(x)||), Zhu et al.
                pairs = [y, g1(match_channels(y, g1.in_channels))]
                if g2 is not None:
                    pairs += [x, g2(match_channels(x, g2.in_channels))]
                terms['identity'] = self.identity_loss(*pairs)
            total = total + c.lambda_identity * terms['identity']
        return total, terms, fakes

    def discriminator_loss(self, x: torch.Tensor, y: torch.Tensor,
                           fakes: Mapping[str, torch.Tensor]
                           ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 4 for D_Y (and D_X), on detached fakes drawn through the image history."""
        terms = {'discriminator_y': self.gan_discriminator_loss(
            self.discriminator_y(y),
            self.discriminator_y(self.history_y.query(fakes['fake_y'].detach())))}
        if self.discriminator_x is not None:
            terms['discriminator_x'] = self.gan_discriminator_loss(
                self.discriminator_x(x),
                self.discriminator_x(self.history_x.query(fakes['fake_x'].detach())))
        # Halved, as in CycleGAN's code, to slow D relative to G.
        return 0.5 * sum(terms.values()), terms

    def generator_step(self, x: torch.Tensor, y: torch.Tensor
                       ) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
        """Minimise eq. 6 over the generators and heads; the discriminators are fixed (no
        gradients reach them). Returns the terms and the generated images."""
        set_requires_grad(self.discriminators, False)
        try:
            total, terms, fakes = self.generator_losses(x, y)
            optimizer = self._optimizers['generators']
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
        finally:
            set_requires_grad(self.discriminators, True)
        logs = {k: float(v.detach()) for k, v in terms.items()}
        return {**logs, 'generator_total': float(total.detach())}, fakes

    def discriminator_step(self, x: torch.Tensor, y: torch.Tensor,
                           fakes: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """Minimise eq. 4 over the discriminators; fakes are detached, so nothing reaches
        the generators."""
        total, terms = self.discriminator_loss(x, y, fakes)
        optimizer = self._optimizers['discriminators']
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        return {k: float(v.detach()) for k, v in terms.items()}

    def training_step(self, x: torch.Tensor, y: torch.Tensor, step: int) -> dict[str, float]:
        """One generator update, then one discriminator update (CycleGAN's order), at the
        learning rate of ``step``. Returns every loss term and the learning rate."""
        lr = self.set_lr(step)
        generator_logs, fakes = self.generator_step(x, y)
        return {**generator_logs, **self.discriminator_step(x, y, fakes), 'lr': lr}

    # --- state beyond networks and optimizers ----------------------------------------
    def history_state(self) -> dict[str, torch.Tensor]:
        return {'x': self.history_x.state(), 'y': self.history_y.state()}

    def load_history_state(self, state: Mapping[str, torch.Tensor]) -> None:
        self.history_x.load(state.get('x', torch.zeros(0)), self.device)
        self.history_y.load(state.get('y', torch.zeros(0)), self.device)


class UnpairedDomains:
    """Unpaired samples of two domains from one dataset whose samples hold both (the depth
    paper trains on NYU v2 unpaired although its frames are registered RGB-D pairs).

    A seeded permutation of the dataset is cut in two halves when ``disjoint`` (default): X
    samples come from the first half, Y samples from the second, so no X image is ever seen
    with its own Y counterpart (e.g. its depth map), not even by chance. Item i pairs X
    sample i with a Y sample drawn at random on each read (numpy's global generator: seeded
    and checkpointed by the trainer, per worker in DataLoader workers). With ``disjoint``
    false both domains use all samples, shuffled independently. ``flip``: each domain's
    sample is mirrored with probability 1/2, independently (CycleGAN's default augmentation).
    Over an epoch-augmented dataset (``takes_epoch``, data.augment) it takes the trainer's
    (epoch, index) keys and reads both domains' samples with that epoch.
    """

    def __init__(self, dataset: Sequence, seed: int, disjoint: bool = True,
                 flip: bool = False):
        if len(dataset) < (2 if disjoint else 1):
            raise ValueError(f'unpaired training needs at least {2 if disjoint else 1} '
                             f'samples, the dataset has {len(dataset)}')
        self.dataset = dataset
        order = np.random.default_rng(seed).permutation(len(dataset))
        half = len(dataset) // 2
        self.x_indices = order[:half] if disjoint else order
        self.y_indices = order[half:] if disjoint else order
        self.flip = flip
        self.takes_epoch = bool(getattr(dataset, 'takes_epoch', False))

    def __len__(self) -> int:
        return len(self.x_indices)

    def _read(self, key: int | tuple[int, int], index: int) -> dict[str, Any]:
        return self.dataset[(key[0], int(index)) if self.takes_epoch else int(index)]

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index = key[1] if self.takes_epoch else key
        y_index = self.y_indices[np.random.randint(len(self.y_indices))]
        pair = {'domain_x': self._read(key, self.x_indices[index]),
                'domain_y': self._read(key, y_index)}
        if self.flip:
            rng = np.random.default_rng(np.random.randint(2 ** 31))
            pair = {k: random_horizontal_flip(v, rng) for k, v in pair.items()}
        return pair


class TranslationMethod(DepthMethod):
    """A training method around one ``CycleTranslation`` whose G1 is the exported network
    (cyclegan: gray -> depth; nir_ctn: NIR -> RGB). It owns what both share: the
    one-process rule, networks / optimizers / training step from the translation, G1 in eval
    mode, and the image history in checkpoints. Subclasses add their domains (config, data,
    batches), depth prediction and the exported spec."""

    def __init__(self, config: TranslationConfig, context: TrainContext = TrainContext()):
        super().__init__(config, context)
        if context.distributed:
            raise ValueError(f'{self.name} trains on one process (batch size 1, as in '
                             'CycleGAN); run without torchrun')
        self.translation = CycleTranslation(config.translation, context.device)
        self.begin_stage(self.stages[0])

    def networks(self) -> dict[str, nn.Module]:
        return self.translation.networks()

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self.translation.optimizers()

    def begin_stage(self, stage: str) -> None:
        super().begin_stage(stage)
        self.train()

    def training_step(self, batch: Mapping[str, torch.Tensor], step: int) -> dict[str, float]:
        return self.translation.training_step(batch['x'], batch['y'], step)

    @torch.no_grad()
    def translate(self, x: torch.Tensor) -> torch.Tensor:
        """G1(x) in eval mode (x and the result in [-1, 1]); G1's mode is restored after."""
        generator = self.translation.generator_xy
        was_training = generator.training
        generator.eval()
        try:
            return generator(x)
        finally:
            generator.train(was_training)

    def export_module(self) -> nn.Module:
        return self.translation.generator_xy

    # --- state beyond networks and optimizers ------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), 'image_history': self.translation.history_state()}

    def load_state_dict(self, state: Mapping[str, Any], with_optimizers: bool = True) -> None:
        super().load_state_dict(state, with_optimizers)
        self.translation.load_history_state(state.get('image_history', {}))
