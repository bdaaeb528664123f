"""HyperparametersGen: the component (component.py, imports TFX), its executor, and the rule (rule.py, light).

Kept empty of imports: `cicd_components.hyperparameters.rule` is used by the settings and the training config,
which must not pull in TFX.
"""
