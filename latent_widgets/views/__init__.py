"""Pictures of the analysis: masks rendered to images, matplotlib figures and their export."""
