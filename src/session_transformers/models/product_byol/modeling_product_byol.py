"""Product BYOL: a TextCNN product-title encoder trained with BYOL on session pairs and a category loss.

Figure 1 of the paper, for a pair of products ``(p_i, p_j)`` seen in the same session:

- online network (weights theta): embeddings ``t`` -> TextCNN ``f`` (representation ``y``, the product embedding
  used downstream) -> projector ``g`` (``z``) -> predictor ``q``;
- target network (weights xi): embeddings -> TextCNN -> projector (``z'``), never trained by gradients, moved by an
  exponential moving average of the online weights after every optimiser step (``tau`` from 0.996 to 1 on BYOL's
  cosine schedule), initialised as a copy of the online network;
- category predictor ``h``: from ``y_i`` to the category of ``p_j`` (Section 3.2.4);
- loss (Eq. 4): ``alpha * (L_BYOL(q(z_i), z'_j) + L_BYOL(q(z_j), z'_i)) + (1 - alpha) * (CE(h(y_i), c_j) +
  CE(h(y_j), c_i))``.

Classes: :class:`ProductByolModel` (the encoder; ``encode_titles`` for users), :class:`ProductByolForPreTraining`
(the whole BYOL model; its target network is listed in ``_frozen_parameters`` and updated by
:meth:`ProductByolForPreTraining.update_target`, which the recipe's ``after_optimizer_step`` hook calls), and
:class:`ProductByolForSequenceClassification` (a linear head on the frozen encoder, for ``transformers.Trainer``).
Shapes: ``B`` products (or pairs), ``T`` tokens, ``E`` embedding size, ``D`` representation size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from ... import losses
from ...distributed import global_mean, world_size
from ...modeling_utils import StrictLoadingMixin
from ...optim import ema_update_
from .configuration_product_byol import ProductByolConfig

IGNORE_INDEX = -100
_PRETRAINING_ONLY = [
    r"^(product_byol\.)?(projector|predictor|category_predictor|target_encoder|target_projector)\."
]
"""Keys of a pretraining checkpoint that the encoder and the classifier do not use (not reported when loading)."""


@dataclass
class ProductByolModelOutput(ModelOutput):
    """``embeddings`` ``(B, D)``: the representation ``y`` of each product; ``pair_embeddings`` ``(B, D)`` of the
    paired products when ``pair_input_ids`` were given."""

    embeddings: torch.Tensor | None = None
    pair_embeddings: torch.Tensor | None = None


@dataclass
class ProductByolForPreTrainingOutput(ModelOutput):
    """``loss`` (Eq. 4, batch mean), its parts ``byol_loss`` and ``category_loss`` (each summed over both
    directions), ``logits`` ``(B, C)`` the category predictions for the paired products from the key products
    (``h(y_i)``), ``per_example_loss`` ``(B,)`` (Eq. 4 per pair, for evaluation), and the representations."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    byol_loss: torch.Tensor | None = None
    category_loss: torch.Tensor | None = None
    per_example_loss: torch.Tensor | None = None
    per_example_byol_loss: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None
    pair_embeddings: torch.Tensor | None = None


@dataclass
class ProductByolSequenceClassifierOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None


def _use_sync_batch_norm(config: ProductByolConfig) -> bool:
    return bool(
        config.sync_batch_norm
        and dist.is_available()
        and dist.is_initialized()
        and dist.get_world_size() > 1
        and dist.get_backend() == "nccl"
    )


def cross_process_batch_norm(h: torch.Tensor, norm: nn.modules.batchnorm._BatchNorm, update_statistics: bool):
    """Training-mode BatchNorm of ``h`` ``(n_p, C)`` over the rows of every process, on any backend.

    What ``nn.SyncBatchNorm`` computes (it needs a GPU process group): the mean, then the biased variance, of the
    global batch by two all-reduces that keep the graph (``torch.distributed.nn.functional.all_reduce``: each
    process's rows receive the gradients of every process's loss through the statistics), the affine map, and
    (``update_statistics``) the running statistics updated with the global mean and unbiased variance, as one
    process with the whole batch would update them.
    """
    from torch.distributed.nn.functional import all_reduce

    count = all_reduce(h.new_tensor([float(h.shape[0])]))
    mean = all_reduce(h.sum(0)) / count
    var = all_reduce(((h - mean) ** 2).sum(0)) / count
    if update_statistics and norm.track_running_stats:
        with torch.no_grad():
            momentum = norm.momentum if norm.momentum is not None else 0.1
            unbiased = var * (count / (count - 1).clamp(min=1))
            norm.running_mean.mul_(1 - momentum).add_(momentum * mean)
            norm.running_var.mul_(1 - momentum).add_(momentum * unbiased)
            norm.num_batches_tracked.add_(1)
    out = (h - mean) * torch.rsqrt(var + norm.eps)
    return out * norm.weight + norm.bias if norm.affine else out


class ProductByolMLP(nn.Module):
    """``Linear(D, hidden) -> BatchNorm -> ReLU -> Linear(hidden, out)``: the projector ``g``, the predictor ``q``
    and the category predictor ``h`` (Appendix A.1).

    With ``config.sync_batch_norm`` under several processes, training-mode BatchNorm uses the statistics of the
    global batch: ``nn.SyncBatchNorm`` on NCCL, :func:`cross_process_batch_norm` on other backends (gloo, CPU)."""

    def __init__(self, config: ProductByolConfig, in_size: int, out_size: int):
        super().__init__()
        self.sync_batch_norm = bool(config.sync_batch_norm)
        norm = nn.SyncBatchNorm if _use_sync_batch_norm(config) else nn.BatchNorm1d
        self.dense = nn.Linear(in_size, config.projection_hidden_size)
        self.norm = norm(
            config.projection_hidden_size, eps=config.batch_norm_eps, momentum=config.batch_norm_momentum
        )
        self.out = nn.Linear(config.projection_hidden_size, out_size)

    def forward(self, x: torch.Tensor, update_statistics: bool = True) -> torch.Tensor:
        """``update_statistics=False`` (the target network): in training, normalise with the batch statistics
        without updating the running ones, which only the EMA update sets (copied from the online network)."""
        h = self.dense(x)
        if (
            self.training
            and self.sync_batch_norm
            and world_size() > 1
            and not isinstance(self.norm, nn.SyncBatchNorm)
        ):
            h = cross_process_batch_norm(h, self.norm, update_statistics)
        elif self.training and not update_statistics:
            n = self.norm
            h = F.batch_norm(h, None, None, n.weight, n.bias, training=True, eps=n.eps)
        else:
            h = self.norm(h)
        return self.out(F.relu(h))


class ProductByolTextEncoder(nn.Module):
    """``t`` then ``f``: token embeddings -> one Conv1d per kernel width -> ReLU -> max over valid windows ->
    concatenation (``len(kernel_sizes) * num_filters``)."""

    def __init__(self, config: ProductByolConfig):
        super().__init__()
        self.config = config
        self.embeddings = nn.Embedding(
            config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id
        )
        self.convs = nn.ModuleList(
            nn.Conv1d(config.embedding_size, config.num_filters, k) for k in config.kernel_sizes
        )
        self.dropout = nn.Dropout(config.encoder_dropout)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``input_ids`` / ``attention_mask`` ``(B, T)``, right-padded -> product embeddings
        ``(B, len(kernel_sizes) * num_filters)``."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (batch, tokens), got shape {tuple(input_ids.shape)}")
        if attention_mask is None:
            pad = self.config.pad_token_id
            attention_mask = (input_ids != pad) if pad is not None else torch.ones_like(input_ids)
        lengths = attention_mask.long().sum(1)  # (B,) right-padded inputs
        widest = max(self.config.kernel_sizes)
        if input_ids.shape[1] < widest:  # every kernel needs at least one window
            fill = self.config.pad_token_id or 0
            input_ids = F.pad(input_ids, (0, widest - input_ids.shape[1]), value=fill)
        x = self.embeddings(input_ids) * (
            torch.arange(input_ids.shape[1], device=input_ids.device)[None] < lengths[:, None]
        ).unsqueeze(-1).to(self.embeddings.weight.dtype)  # padding embeds as zeros, whatever its id
        x = x.transpose(1, 2)  # (B, E, T)
        pooled = []
        for k, conv in zip(self.config.kernel_sizes, self.convs):
            h = F.relu(conv(x))  # (B, F, T - k + 1)
            # window w covers tokens w .. w+k-1; it is valid when inside the title (the first one always is)
            valid = torch.arange(h.shape[-1], device=h.device)[None] < (lengths - k + 1).clamp(min=1)[:, None]
            pooled.append(h.masked_fill(~valid[:, None, :], float("-inf")).amax(-1))  # (B, F)
        return self.dropout(torch.cat(pooled, dim=-1))  # (B, D)


class ProductByolPreTrainedModel(StrictLoadingMixin, PreTrainedModel):
    config: ProductByolConfig
    config_class = ProductByolConfig
    base_model_prefix = "product_byol"
    main_input_name = "input_ids"

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        cfg = self.config
        if isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=cfg.embedding_init_std)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, (nn.Linear, nn.Conv1d)):
            init.normal_(module.weight, mean=0.0, std=cfg.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)


class ProductByolModel(ProductByolPreTrainedModel):
    """The product encoder ``f(t(title))``: returns the 512-d representation ``y`` of each title."""

    _keys_to_ignore_on_load_unexpected = _PRETRAINING_ONLY

    def __init__(self, config: ProductByolConfig):
        super().__init__(config)
        self.encoder = ProductByolTextEncoder(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.encoder.embeddings = value

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pair_input_ids: torch.Tensor | None = None,
        pair_attention_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> ProductByolModelOutput:
        """``input_ids`` / ``attention_mask`` ``(B, T)`` from :class:`ProductByolProcessor`; the ``pair_*`` inputs
        (a pretraining batch's other products) are embedded too when given. Labels in ``kwargs`` are ignored."""
        emb = self.encoder(input_ids, attention_mask)
        pair = self.encoder(pair_input_ids, pair_attention_mask) if pair_input_ids is not None else None
        return ProductByolModelOutput(embeddings=emb, pair_embeddings=pair)

    @torch.no_grad()
    def encode_titles(
        self, titles: Sequence[str], processor=None, batch_size: int = 256, normalize: bool = False
    ) -> np.ndarray:
        """Embed product titles: ``(len(titles), D)`` float32 array of the representation ``y`` (eval mode).

        Args:
            titles: raw titles (the processor normalises them).
            processor: the :class:`ProductByolProcessor` saved with the model (``AutoProcessor.from_pretrained``).
            batch_size: titles per forward pass (titles are grouped by length first, which changes no output).
            normalize: L2-normalise each embedding (for cosine similarity search).
        """
        if processor is None:
            raise ValueError("encode_titles needs the model's processor: AutoProcessor.from_pretrained(path)")
        if isinstance(titles, str):
            titles = [titles]
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        titles = list(titles)
        out = torch.zeros((len(titles), self.config.hidden_size))
        # Batches of titles of similar length: a batch is padded to its longest title, and the convolutions'
        # work grows with the padded length. Titles are tokenised a group of batches at a time (bounded
        # memory), ordered by length within the group, embedded, and put back in input order.
        group = 64 * batch_size
        for g in range(0, len(titles), group):
            encoded = processor(titles[g : g + group])
            ids, mask = encoded["input_ids"], encoded["attention_mask"]
            order = torch.argsort(mask.sum(1), stable=True)
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                width = max(int(mask[rows].sum(1).max()), 1)
                emb = self.encoder(ids[rows, :width].to(device), mask[rows, :width].to(device))
                out[g + rows] = (F.normalize(emb, dim=-1) if normalize else emb).float().cpu()
        self.train(was_training)
        return out.numpy()


class ProductByolForPreTraining(ProductByolPreTrainedModel):
    """The BYOL model of Figure 1 with the category predictor: online encoder + projector + predictor, the EMA
    target (encoder + projector) and ``h``.

    The target network's parameters are listed in ``_frozen_parameters`` (the trainers freeze them; checkpoints
    save them) and move only in :meth:`update_target`, called after every optimiser step by the recipe's
    ``after_optimizer_step`` hook with ``optim.byol_momentum(step, total_steps, config.tau_base)``: a function of
    the weights and the step alone, so that it resumes exactly and is identical on every process.
    """

    _frozen_parameters = ("target_encoder.", "target_projector.")

    def __init__(self, config: ProductByolConfig):
        super().__init__(config)
        d = config.hidden_size
        self.product_byol = ProductByolModel(config)
        self.projector = ProductByolMLP(config, d, config.projection_size)
        self.predictor = ProductByolMLP(config, config.projection_size, config.projection_size)
        self.category_predictor = (
            ProductByolMLP(config, d, config.num_categories) if config.num_categories > 0 else None
        )
        self.target_encoder = ProductByolTextEncoder(config)
        self.target_projector = ProductByolMLP(config, d, config.projection_size)
        self.post_init()
        self.update_target(0.0)  # xi = theta at creation (Section 3.2.2); a checkpoint's target replaces it
        for name, p in self.named_parameters():
            if name.startswith(self._frozen_parameters):
                p.requires_grad_(False)

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        """``xi <- tau * xi + (1 - tau) * theta`` for the encoder and the projector; BatchNorm buffers copied.

        Under several processes the online BatchNorms' running statistics (updated by each process's forward on
        its own share of the batch) are first averaged over the processes, so that every process holds the same
        statistics and the same target (call it on every process, as the trainers' hook does)."""
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            for name, module in self.named_modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm) and not name.startswith("target_"):
                    for buf in (module.running_mean, module.running_var):
                        dist.all_reduce(buf, op=dist.ReduceOp.SUM)
                        buf.div_(dist.get_world_size())
        ema_update_(self.target_encoder, self.product_byol.encoder, tau)
        ema_update_(self.target_projector, self.projector, tau)

    def _category_loss(self, y: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Per-example CE of predicting ``labels`` from ``y`` (0 where the label is unknown)."""
        logits = self.category_predictor(y)
        if labels is None:
            return logits.new_zeros(y.shape[0])
        return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="none")

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pair_input_ids: torch.Tensor | None = None,
        pair_attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        pair_labels: torch.Tensor | None = None,
        **kwargs,
    ) -> ProductByolForPreTrainingOutput:
        """A batch of ``B`` pairs: ``input_ids`` / ``attention_mask`` ``(B, T)`` (products ``p_i``),
        ``pair_input_ids`` / ``pair_attention_mask`` ``(B, T')`` (``p_j``), ``labels`` / ``pair_labels`` ``(B,)``
        their category ids (``-100``: unknown). Returns ``embeddings`` (and ``pair_embeddings``) ``(B, D)``, the
        category ``logits`` ``(B, num_categories)`` when the model has a category predictor, and the scalar
        ``loss``. The loss needs the pair inputs and, when ``alpha < 1``, the labels; without labels there is no
        loss."""
        cfg = self.config
        y_i = self.product_byol.encoder(input_ids, attention_mask)
        logits = self.category_predictor(y_i) if self.category_predictor is not None else None
        if pair_input_ids is None:
            return ProductByolForPreTrainingOutput(logits=logits, embeddings=y_i)
        y_j = self.product_byol.encoder(pair_input_ids, pair_attention_mask)
        if labels is None and pair_labels is None:
            return ProductByolForPreTrainingOutput(logits=logits, embeddings=y_i, pair_embeddings=y_j)
        # online: one pass over both products, so that BatchNorm sees the whole batch of 2B products
        q = self.predictor(self.projector(torch.cat([y_i, y_j])))
        q_i, q_j = q.chunk(2)
        with torch.no_grad():  # target: stop-gradient
            z = self.target_projector(
                torch.cat(
                    [
                        self.target_encoder(input_ids, attention_mask),
                        self.target_encoder(pair_input_ids, pair_attention_mask),
                    ]
                ),
                update_statistics=False,
            )
            z_i, z_j = z.chunk(2)
        byol = losses.byol_loss(q_i, z_j, reduction="none") + losses.byol_loss(q_j, z_i, reduction="none")
        if self.category_predictor is not None:
            h = self.category_predictor(torch.cat([y_i, y_j]))
            logits = h[: y_i.shape[0]]
            both = (
                torch.cat([pair_labels, labels]) if labels is not None and pair_labels is not None else None
            )
            if both is None:
                raise ValueError("the category loss needs both labels and pair_labels (use -100 for unknown)")
            ce_all = F.cross_entropy(h, both, ignore_index=IGNORE_INDEX, reduction="none")
            ce = ce_all[: y_i.shape[0]] + ce_all[y_i.shape[0] :]  # CE(h(y_i), c_j) + CE(h(y_j), c_i)
            known = (both != IGNORE_INDEX).float().sum().clamp(min=1.0)
            category_loss = ce_all.sum() / known * 2.0  # mean over known labels, both directions
        else:
            ce = byol.new_zeros(byol.shape)
            category_loss = byol.new_zeros(())
        byol_loss = byol.mean()
        if world_size() > 1 and torch.is_grad_enabled():
            # several processes: means over the global batch (distributed.global_mean; a label may be unknown)
            byol_loss = global_mean(byol.sum(), byol.shape[0])
            if self.category_predictor is not None:
                category_loss = global_mean(ce_all.sum(), (both != IGNORE_INDEX).sum()) * 2.0
        loss = cfg.alpha * byol_loss + (1.0 - cfg.alpha) * category_loss
        return ProductByolForPreTrainingOutput(
            loss=loss,
            logits=logits,
            byol_loss=byol_loss.detach(),
            category_loss=category_loss.detach(),
            per_example_loss=(cfg.alpha * byol + (1.0 - cfg.alpha) * ce).detach(),
            per_example_byol_loss=byol.detach(),
            embeddings=y_i,
            pair_embeddings=y_j,
        )


class ProductByolForSequenceClassification(ProductByolPreTrainedModel):
    """A linear head on the product representation, for ``transformers.Trainer`` (product-level labels).

    With ``config.freeze_encoder`` (default) the encoder is listed in ``_frozen_parameters`` and only the head
    trains: the paper's downstream protocol (frozen embeddings, a linear classifier)."""

    _keys_to_ignore_on_load_unexpected = _PRETRAINING_ONLY

    def __init__(self, config: ProductByolConfig):
        super().__init__(config)
        self.product_byol = ProductByolModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self._frozen_parameters = ("product_byol.",) if config.freeze_encoder else ()
        self.post_init()
        for name, p in self.named_parameters():
            if self._frozen_parameters and name.startswith(self._frozen_parameters):
                p.requires_grad_(False)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> ProductByolSequenceClassifierOutput:
        """``input_ids`` / ``attention_mask`` ``(B, T)``, ``labels`` ``(B,)`` class ids. Other keys of a pretraining
        batch (``pair_*``) are ignored."""
        if self.config.freeze_encoder:
            with torch.no_grad():
                y = self.product_byol.encoder(input_ids, attention_mask)
        else:
            y = self.product_byol.encoder(input_ids, attention_mask)
        logits = self.classifier(self.dropout(y))
        loss = None
        if labels is not None:
            if self.config.num_labels == 1:
                loss = F.mse_loss(logits.squeeze(-1), labels.float())
            else:
                loss = F.cross_entropy(logits, labels.long(), ignore_index=IGNORE_INDEX)
        return ProductByolSequenceClassifierOutput(loss=loss, logits=logits, embeddings=y)


__all__ = [
    "ProductByolForPreTraining",
    "ProductByolForPreTrainingOutput",
    "ProductByolForSequenceClassification",
    "ProductByolMLP",
    "ProductByolModel",
    "ProductByolModelOutput",
    "ProductByolPreTrainedModel",
    "ProductByolSequenceClassifierOutput",
    "ProductByolTextEncoder",
]
