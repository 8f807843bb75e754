"""The ethogram viewer and labeller: :class:`deg.widgets.model.EthogramModel` holds its state
(frame cursor, annotators' labels, model probabilities, edits, undo, saving); the JupyterLab view is
not written yet (see the README's "Teaching with deg")."""
