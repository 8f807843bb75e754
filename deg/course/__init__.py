"""The teaching course: exercise checks (:mod:`deg.course.checks`) and the notebook builder
(:mod:`deg.course.build`) that turns each lesson's one source into a student and a solutions notebook."""
