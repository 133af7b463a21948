"""Pins the public surface of jfx.core so an accidental change shows up."""

import jfx.core

EXPECTED = {
    "Batch", "Callback", "Categorical", "DNNClassifier", "DNNRegressor", "Dataset", "EarlyStopping",
    "FeatureInput", "History", "LoadedModel", "Metric", "Numeric", "PRECISIONS", "TensorSpec", "Trainer",
    "WideAndDeep", "accuracy", "auc", "batch_sharding", "data_mesh", "encode_strings", "evaluate", "export",
    "export_model", "feature_spec_from_json", "feature_spec_to_json", "fit", "latest_checkpoint",
    "list_checkpoints", "load", "mae", "mse", "replicated_sharding", "signature_from_dataset", "stable_hash",
    "validate_encoder", "vocab_size", "ModelServer", "ServingConfig", "serve", "RequestLogConfig",
    "request_log_schema", "Distributed", "initialize_distributed", "OnnxExport", "OnnxModel", "export_onnx",
    "load_onnx", "WebExport", "export_web",
}


def test_public_api_is_pinned():
    assert set(jfx.core.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(jfx.core, name) is not None
