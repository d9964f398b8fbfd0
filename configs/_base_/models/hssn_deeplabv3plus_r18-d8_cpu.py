# The HSSN DeepLabV3+ model of hssn_deeplabv3plus_r101-d8.py (same head, losses and
# inference) shrunk for a CPU: a half-width ResNet-18-D8 with BN, trained from scratch,
# no auxiliary head. The CPU demo and the CPU tests of the benchmark datasets use it.
_base_ = ['./hssn_deeplabv3plus_r101-d8.py']
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    pretrained=None,  # nothing to download: trained from scratch
    backbone=dict(depth=18, stem_channels=32, base_channels=32, norm_cfg=norm_cfg),
    decode_head=dict(in_channels=256, channels=64, dilations=(1, 6, 12, 18),
                     c1_in_channels=32, c1_channels=16, norm_cfg=norm_cfg,
                     embedding_channels=64),
    auxiliary_head=None)
