from django.urls import path

from runs import views

app_name = "runs"

urlpatterns = [
    path("", views.run_list, name="list"),
    path("runs/new/", views.new_run, name="new"),
    path("runs/<int:pk>/", views.run_detail, name="detail"),
]
