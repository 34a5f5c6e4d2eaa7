"""Pages for people: login and the home page. Presents only; calls into the apps."""
