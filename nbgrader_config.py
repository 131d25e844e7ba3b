# nbgrader reads this file from the course root; the course itself lives in course_config.py.
c = get_config()  # noqa: F821
load_subconfig("course_config.py")  # noqa: F821
