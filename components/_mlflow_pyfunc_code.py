"""The code MLflow runs to rebuild a jfx MLflow Model (models from code: no pickle).

``mlflow.pyfunc.save_model(python_model=<this file>)`` copies it into the model folder;
``mlflow.pyfunc.load_model`` executes it, which hands MLflow a
:class:`jfx.components._mlflow_model.JfxPythonModel` (jfx must be installed there).
"""

from mlflow.models import set_model

from jfx.components._mlflow_model import JfxPythonModel

set_model(JfxPythonModel())
