"""Carrying out a speed plan (speed/__init__.py's `SpeedPlan`) on one model."""


def apply_speed(model, plan) -> dict:
    """Apply `plan` to `model` (built in `plan.data_format`) in place; returns how many
    layers each path took."""
    switched = {}
    if plan.conv == "onednn":
        from .onednn_conv import use_onednn_conv
        switched["onednn"] = use_onednn_conv(model, plan.library, plan.bf16)
        if plan.fused_block:  # before onednn_norm, which leaves fused layers alone
            from .fused_block import use_fused_blocks
            from .fused_norm_conv import use_fused_norm_conv
            switched["fused_block"] = use_fused_blocks(model, plan.library, plan.bf16)
            switched["fused_norm_conv"] = use_fused_norm_conv(model, plan.library, plan.bf16)
        if plan.onednn_norm:
            from .onednn_norm import use_onednn_norm
            switched["onednn_norm"] = use_onednn_norm(model)
    if plan.conv_input_grad:
        from .conv_grad import use_conv_for_input_grad
        switched["conv_input_grad"] = use_conv_for_input_grad(model)
    return switched
