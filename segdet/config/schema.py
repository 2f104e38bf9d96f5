"""The declarative config schema: every section and key, with its type, default and help.

``SCHEMA`` is a nested dict. A nested ``dict`` is a *section* whose keys are checked (unknown keys
are errors) and merged with the defaults; a :class:`Field` is a leaf value. A ``Field`` of type
``dict`` or ``list`` is free-form (e.g. the ``loss`` spec): a value given in the file replaces the
default as a whole.

Adding keys (e.g. for a new dataset kind) is one edit here:

    SCHEMA["data"]["voc"] = {"root": Field(str, None, required=True, path=True, help="...")}
    SCHEMA["data"]["kind"].choices += ("voc",)

Types: ``int``, ``float`` (ints accepted and converted), ``str``, ``bool``, ``list``, ``dict``;
``nullable=True`` also accepts ``null``. ``path=True`` marks a string resolved against the folder
of the config file. ``required=True`` inside ``data.<kind>`` means required when
``data.kind == <kind>``; elsewhere it means always required.

``TASK_ONLY`` lists the keys (and sections) one task reads and the other ignores: set away from
its default under the other task, such a key is an error rather than a silent no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Field", "SCHEMA", "KIND_SECTIONS", "TASK_ONLY"]


@dataclass
class Field:
    """One config leaf.

    Attributes:
        type: a type or a tuple of accepted types (``int``, ``float``, ``str``, ``bool``, ``list``,
            ``dict``).
        default: the value used when the key is absent (deep-copied).
        nullable: ``null`` is accepted.
        choices: allowed values (strings are compared as given); of a ``list`` field, the allowed elements.
        required: a value other than ``null`` must be given (see the module docstring for
            ``data.<kind>`` sections).
        path: a string path resolved against the config file's folder.
        help: one line for the README's reference table.
        minimum: smallest allowed number (inclusive).
        maximum: largest allowed number (inclusive).
    """

    type: type | tuple[type, ...]
    default: Any = None
    nullable: bool = False
    choices: tuple[Any, ...] | None = None
    required: bool = False
    path: bool = False
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None

    @property
    def types(self) -> tuple[type, ...]:
        """The accepted Python types as a tuple."""
        return self.type if isinstance(self.type, tuple) else (self.type,)


#: sections of ``data`` that belong to one ``data.kind``; their ``required`` keys apply only then
KIND_SECTIONS: list[str] = ["synthetic", "folder", "coco"]

SCHEMA: dict[str, Any] = {
    "task": Field(str, "segmentation", choices=("segmentation", "detection"), help="problem to train"),
    "seed": Field(int, 0, help="seed of every random generator (python, numpy, torch, data order)"),
    "deterministic": Field(bool, False, help="deterministic algorithms (slower); same seed gives the same weights"),
    "output_dir": Field(
        str, "runs/train", help="run folder, relative to the current directory; an existing run gets a -2, -3... suffix"
    ),
    "data": {
        "kind": Field(str, "synthetic", choices=("synthetic", "folder", "coco"), help="dataset kind"),
        "classes": Field(list, None, nullable=True, help="class names (index 0 first); null = from the data"),
        "ignore_index": Field(int, 255, help="mask value excluded from loss and metrics"),
        "mode": Field(
            str,
            "multiclass",
            choices=("multiclass", "binary", "multilabel"),
            help="segmentation: one class per pixel (softmax), one sigmoid foreground channel, or one sigmoid "
            "channel per class (classes may overlap)",
        ),
        "threshold": Field(
            float,
            0.5,
            minimum=0.0,
            maximum=1.0,
            help="binary / multilabel: a pixel is predicted where sigmoid(logit) > threshold, strictly inside (0, 1)",
        ),
        "batch_size": Field(int, 8, minimum=1, help="images per step"),
        "num_workers": Field((int, str), "auto", help="loader processes; auto = min(CPU count, 8), 0 for tiny data"),
        "synthetic": {
            "train_size": Field(int, 256, minimum=1, help="generated training images"),
            "val_size": Field(int, 64, minimum=1, help="generated validation images"),
            "height": Field(int, 96, minimum=8, help="image height"),
            "width": Field(int, 128, minimum=8, help="image width"),
            "seed": Field(int, 0, help="seed of the generated images"),
        },
        "folder": {
            "train": Field(
                str,
                None,
                nullable=True,
                required=True,
                path=True,
                help="folder with images/ and masks/ (segmentation) or instances/ id PNGs (detection), by file stem",
            ),
            "val": Field(str, None, nullable=True, required=True, path=True, help="validation folder, same layout"),
            "mask_values": Field(dict, None, nullable=True, help="mask value -> class index, e.g. {255: 1, 0: 0}"),
            "train_split": Field(
                str,
                None,
                nullable=True,
                path=True,
                help="text file of stems (one per line) selecting the pairs of data.folder.train; null = every file",
            ),
            "val_split": Field(
                str,
                None,
                nullable=True,
                path=True,
                help="text file of stems selecting the pairs of data.folder.val; null = every file",
            ),
        },
        "coco": {
            "train_json": Field(str, None, nullable=True, required=True, path=True, help="COCO annotation file"),
            "train_images": Field(str, None, nullable=True, required=True, path=True, help="image folder"),
            "val_json": Field(str, None, nullable=True, required=True, path=True, help="COCO annotation file"),
            "val_images": Field(str, None, nullable=True, required=True, path=True, help="image folder"),
        },
    },
    "augment": {
        "train": Field(list, [], help="albumentations steps [{Name: {args}}] on every training source"),
        "val": Field(list, [], help="albumentations steps for validation"),
        "mix": Field(list, [], help="mixers from augment.MIXERS, e.g. [{CutMix: {p: 0.5}}]"),
        "post": Field(list, [], help="albumentations steps after mixing"),
    },
    "model": {
        "arch": Field(str, "Unet", help="smp architecture (Unet, FPN, DeepLabV3Plus, ...)"),
        "encoder": Field(str, "resnet18", help="smp encoder (resnet18, resnet34, efficientnet-b0, ...)"),
        "encoder_weights": Field(
            str, None, nullable=True, help="smp pretrained weights name; null = random init, no download"
        ),
        "weights": Field(
            str, None, nullable=True, path=True, help="local state dict or segdet checkpoint to start from"
        ),
        "mean": Field(
            list, [0.485, 0.456, 0.406], help="per-channel mean subtracted inside the model (input in [0, 1])"
        ),
        "std": Field(list, [0.229, 0.224, 0.225], help="per-channel std divided inside the model"),
    },
    "loss": Field(dict, {"ce": 1.0, "dice": 1.0}, help="losses.ComboLoss spec: name -> weight or {weight, options}"),
    "optim": {
        "name": Field(
            str,
            "adamw",
            choices=("adamw", "sgd", "adabound", "adaboundw", "lion"),
            help="optimizer; adabound, adaboundw and lion come from pytorch-optimizer (segdet[optim])",
        ),
        "lr": Field(float, 0.001, minimum=0.0, help="peak learning rate"),
        "weight_decay": Field(
            float, 0.0001, minimum=0.0, help="decoupled (adamw) / L2 (sgd) decay; not on biases and norms"
        ),
        "momentum": Field(float, 0.9, minimum=0.0, help="SGD momentum (adamw, adabound, lion: beta1)"),
        "args": Field(dict, {}, help="more keyword arguments of a pytorch-optimizer optimizer, e.g. {final_lr: 0.1}"),
    },
    "schedule": {
        "name": Field(
            str, "cosine", choices=("cosine", "poly", "onecycle", "constant"), help="LR schedule, stepped per iteration"
        ),
        "warmup_epochs": Field(float, 0.0, minimum=0.0, help="linear warmup length (fractions allowed)"),
        "min_lr_ratio": Field(float, 0.01, minimum=0.0, help="final LR as a fraction of optim.lr (cosine, poly)"),
        "power": Field(float, 0.9, minimum=0.0, help="exponent of the poly schedule"),
    },
    "train": {
        "epochs": Field(int, 10, minimum=1, help="training epochs"),
        "device": Field(str, "auto", help="auto | cpu | cuda | cuda:N"),
        "amp": Field(
            str,
            "auto",
            choices=("auto", "none", "fp16", "bf16"),
            help="mixed precision on CUDA; auto = bf16 if supported else fp16; CPU: none",
        ),
        "channels_last": Field(bool, False, help="NHWC memory format (faster convolutions on recent GPUs)"),
        "accumulate": Field(int, 1, minimum=1, help="batches per optimizer step"),
        "clip_grad_norm": Field(float, None, nullable=True, minimum=0.0, help="max gradient norm; null = no clipping"),
        "ema": Field(
            float,
            None,
            nullable=True,
            minimum=0.0,
            maximum=1.0,
            help="EMA decay of the weights (e.g. 0.999); null = off",
        ),
        "metric": Field(str, "miou", help="validation metric that picks best.pt (higher is better)"),
        "val_interval": Field(
            int,
            1,
            minimum=1,
            nullable=True,
            help="epochs between validations, the last always validated; null: none (best.pt = the last weights)",
        ),
        "patience": Field(
            int, None, nullable=True, minimum=1, help="stop after this many validations without improvement"
        ),
        "progress": Field(bool, True, help="progress: a tqdm bar on a terminal, plain lines otherwise"),
        "log": Field(
            list,
            ["csv"],
            choices=("csv", "tensorboard"),
            help="run logs: csv = results.csv and results.png; tensorboard = RUN/tensorboard/ (segdet[tensorboard])",
        ),
    },
}

# --- segmentation inference: one path for validation, segdet eval and segdet predict ---------
SCHEMA["inference"] = {
    "mode": Field(str, "whole", choices=("whole", "slide"), help="segmentation: whole image, or a sliding window"),
    "tile": Field(list, None, nullable=True, help="slide: tile [height, width] in pixels"),
    "overlap": Field(float, 0.25, minimum=0.0, help="slide: fraction of a tile shared with its neighbour, [0, 1)"),
    "blend": Field(str, "gaussian", choices=("gaussian", "mean"), help="slide: weights of overlapping tiles"),
    "batch": Field(int, 4, minimum=1, help="slide: tiles per forward pass"),
    "flip": Field(list, [], help="TTA flips averaged with the plain pass: [h] left-right, [v] up-down"),
    "scales": Field(list, [1.0], help="TTA scales, logits resized back and averaged, e.g. [0.75, 1.0, 1.25]"),
}

# --- detection (task: detection): dataset kinds, mixing schedule, detector options -----------
SCHEMA["data"]["kind"].choices += ("voc", "yolo")
SCHEMA["data"]["kind"].help = "dataset kind (voc and yolo: detection only)"
SCHEMA["data"]["voc"] = {
    "train": Field(
        str,
        None,
        nullable=True,
        required=True,
        path=True,
        help="Pascal VOC folder with Annotations/*.xml and JPEGImages/",
    ),
    "val": Field(str, None, nullable=True, required=True, path=True, help="validation VOC folder (may equal train)"),
    "train_split": Field(
        str, None, nullable=True, help="ImageSets/Main/<name>.txt listing the training ids; null = every xml"
    ),
    "val_split": Field(str, None, nullable=True, help="ImageSets/Main/<name>.txt listing the validation ids"),
    "keep_difficult": Field(bool, False, help="keep objects marked difficult (dropped by default)"),
}
SCHEMA["data"]["yolo"] = {
    "train": Field(
        str,
        None,
        nullable=True,
        required=True,
        path=True,
        help="YOLO folder with images/ and labels/*.txt (class cx cy w h, or class x1 y1 ... polygons; normalised)",
    ),
    "val": Field(str, None, nullable=True, required=True, path=True, help="validation YOLO folder"),
}
KIND_SECTIONS += ["voc", "yolo"]
SCHEMA["data"]["folder"]["class_map"] = Field(
    str,
    None,
    nullable=True,
    path=True,
    help="detection: json {stem: {instance id: class index}} naming the class of each object of instances/; "
    "null = one class",
)
SCHEMA["augment"]["mix_off_last_epochs"] = Field(
    int, 0, minimum=0, help="switch mixing off for the last N epochs (detection)"
)
SCHEMA["model"]["min_size"] = Field(
    int, None, nullable=True, minimum=8, help="detector input: shorter side resized to this; null = torchvision default"
)
SCHEMA["model"]["max_size"] = Field(int, None, nullable=True, minimum=8, help="detector input: longer side cap")
SCHEMA["model"]["score_thresh"] = Field(
    float, 0.05, minimum=0.0, maximum=1.0, help="detector: drop detections below this score at inference"
)
SCHEMA["model"]["detections_per_img"] = Field(int, 100, minimum=1, help="detector: detections kept per image")
SCHEMA["model"]["anchors"] = Field(
    str,
    "keep",
    choices=("keep", "fit"),
    help="detector: keep the anchor sizes, or fit them to the training boxes (one scale factor, best possible "
    "recall at IoU 0.5); the coverage is printed either way",
)
SCHEMA["train"]["eval_backend"] = Field(
    str,
    "pycocotools",
    choices=("pycocotools", "faster-coco-eval"),
    help="detection: COCO evaluation backend (identical numbers)",
)
# --- scale-out (torchrun / DDP) and batch-level mixing on the device ----------------------------
SCHEMA["train"]["sync_bn"] = Field(bool, False, help="DDP: SyncBatchNorm across processes (CUDA only)")
SCHEMA["train"]["dist_timeout"] = Field(
    float, 600.0, minimum=1.0, help="DDP: seconds a collective may wait before the run stops with the stalled stage"
)
SCHEMA["augment"]["batch_mix"] = Field(
    list, [], help="segmentation: batch-level mixers on the device, [{CutMix: {p, alpha}}, {MixUp: {p, alpha}}]"
)
SCHEMA["model"]["detector_args"] = Field(
    dict,
    {},
    help="detector: extra torchvision builder arguments, e.g. "
    "{box_batch_size_per_image: 64, rpn_post_nms_top_n_train: 300}",
)

# --- segmentation training modes: feature-level mixing and knowledge distillation -------------
SCHEMA["augment"]["feature_mix"] = Field(
    list,
    [],
    help="segmentation: encoder-feature mixing in the training loss, [{ManifoldMixup: {p, alpha, stages}}, "
    "{PatchUp: {p, block, gamma, mode, alpha, stages}}]",
)
SCHEMA["distill"] = {
    "teacher_checkpoint": Field(
        str,
        None,
        nullable=True,
        path=True,
        help="segmentation: a segdet checkpoint whose saved config rebuilds the teacher; null = no distillation",
    ),
    "teacher_config": Field(
        str, None, nullable=True, path=True, help="YAML that rebuilds the teacher instead of the checkpoint's config"
    ),
    "loss": Field(
        str,
        "kd",
        choices=("kd", "cwd"),
        help="kd: per-pixel KL of softened class distributions; cwd: channel-wise (Shu et al. 2021); both times T^2",
    ),
    "weight": Field(float, 1.0, minimum=0.0, help="factor of the distillation term in the training loss"),
    "temperature": Field(float, 1.0, minimum=0.0, help="softening temperature T (> 0)"),
}

# --- keys one task reads and the other ignores ------------------------------------------------
#: key (or section) -> (the task that reads it, what it is for the other task). A value other than
#: the default under the other task is an error: it would be ignored without a word.
TASK_ONLY: dict[str, tuple[str, str]] = {
    "loss": ("segmentation", "detectors train with their own loss terms"),
    "model.encoder": ("segmentation", "model.arch names the whole torchvision detector, backbone included"),
    "model.encoder_weights": ("segmentation", "detectors start from random weights or model.weights"),
    "model.mean": ("segmentation", "torchvision detectors normalise their input themselves"),
    "model.std": ("segmentation", "torchvision detectors normalise their input themselves"),
    "data.mode": ("segmentation", "a box carries one label"),
    "data.threshold": ("segmentation", "detections are cut at model.score_thresh"),
    "inference": ("segmentation", "detectors predict whole images"),
    "augment.batch_mix": ("segmentation", "detection mixes samples with augment.mix"),
    "augment.feature_mix": ("segmentation", "it hooks the encoder of an smp segmentation model"),
    "distill": ("segmentation", "distillation matches segmentation logits"),
    "model.min_size": ("detection", "segmentation models take the image size the pipeline gives"),
    "model.max_size": ("detection", "segmentation models take the image size the pipeline gives"),
    "model.score_thresh": ("detection", "segmentation has no detection scores"),
    "model.detections_per_img": ("detection", "segmentation has no detections"),
    "model.anchors": ("detection", "segmentation models have no anchors"),
    "model.detector_args": ("detection", "they are arguments of torchvision's detector builders"),
    "train.eval_backend": ("detection", "segmentation is scored by its own confusion matrix"),
    "augment.mix_off_last_epochs": ("detection", "segmentation mixes in every epoch"),
    "data.folder.class_map": ("detection", "segmentation reads the class of each pixel from masks/"),
    "data.folder.mask_values": ("segmentation", "instances/ PNGs hold object ids; data.folder.class_map names them"),
}

# --- checkpoints inside an epoch, exact resume, unreadable samples -----------------------------
SCHEMA["train"]["checkpoint_every"] = Field(
    int,
    None,
    nullable=True,
    minimum=1,
    help="also write weights/last.pt every N optimizer steps inside an epoch (--resume continues from that step); "
    "null = at epoch ends only",
)
SCHEMA["data"]["skip_bad"] = Field(
    bool,
    False,
    help="skip training samples that cannot be read (counted in the epoch line) instead of stopping with the file",
)
