# The CPU demo trained with the HSSN release's whole objective (as the _release recipe:
# RMI on every node, cross-entropy at every level from each level's own node logits,
# focal tree-min, tree-triplet). The demo keeps RMI and CE on the leaves instead; this
# entry measures that choice (README, "Results").
_base_ = ['./demo_cpu.py', './_base_/losses/hssn_release.py']
custom_imports = dict(imports=['hseg_mm'], allow_failed_imports=False)
model = dict(decode_head=dict(loss_decode={{_base_.hssn_release_loss}}))
