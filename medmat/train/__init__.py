"""Fine-tune and evaluate image-text-to-text models on Med-MAT configs (optional extra: `medmat[train]`).

Modules: `config` (typed settings, the paper's presets), `data` (load, check, mix, token lengths), `collate`
(rows -> chat messages -> inputs, labels only on the answer), `model` (load, LoRA), `trainer` (transformers
Trainer), `extract` + `evaluate` (answer extraction, accuracy per subset and label), `experiments` (`medmat cg run`),
`tiny` (random models with a local tokenizer for tests and benchmarks), `cli` (the commands).

Importing this package does not import torch; the submodules that need it do.
"""
