"""The ethogram viewer and labeller: :class:`deg.widgets.model.EthogramModel` holds its state
(frame cursor, annotators' labels, model probabilities, edits, undo, saving); the JupyterLab view is
:class:`deg.widgets.viewer.EthogramWidget` (see the README's "Teaching with deg")."""
