"""The language guard: another language or script is flagged, English lists, code and short text are not."""

import pytest

from grader.language import language_flag


def test_mashing_is_gibberish_and_short_or_formal_text_is_not_judged():
    assert language_flag("asdkj qwpeoi zxcmnb lkjhq wpoeir mnbvcx") == "gibberish"
    assert language_flag("O(n)") is None  # too short to judge: a correct answer on Mohler
    assert language_flag("Die Normalisierung skaliert alle Merkmale auf einen gemeinsamen Wertebereich.") == "other_language"
    assert language_flag("Batch norm normalizes the activations of each layer.") is None
    # A worked calculation is mostly digits and operators: not judged as a language (SAF humans: 0.9 of 1).
    assert language_flag("P(B) = 0,6^3 * 0,4^3 = 0,0138 P(C) = (6 über 3) * 0,6^3 * 0,4^3 = 0,2765 so B < C < A") is None
    assert language_flag("qwx 1 zzkv 2 pfft 3 hjkl 4 mnbv 5 trwq") == "gibberish"  # a few digits do not excuse mashing


@pytest.mark.parametrize("text", [
    "La normalisation met toutes les variables sur une meme echelle commune avant entrainement",
    "La normalizacion pone todas las variables en una misma escala antes del entrenamiento del modelo",
    "Il pooling massimo mantiene il valore piu grande in ogni finestra della mappa",
    "Normalisatie brengt alle kenmerken naar dezelfde schaal voordat het model wordt getraind",
    # Short technical prose the hand-written guard let through, and scripts other than Latin.
    "Der Stack ist ein Speicherbereich, in dem lokale Variablen und Rücksprungadressen liegen.",
    "Max pooling nimmt den größten Wert in jedem Fenster und verkleinert die Feature Map",
    "Normalizacja sprowadza wszystkie cechy do tej samej skali przed treningiem modelu",
    "Нормализация приводит все признаки к одному масштабу перед обучением",
    "归一化把所有特征缩放到同一个范围，这样训练更稳定。",
])
def test_prose_in_another_language_or_script_is_flagged(text):
    assert language_flag(text) == "other_language"


@pytest.mark.parametrize("text", [
    # Mohler and SAF answers that were flagged before lists were told apart from other languages.
    "1- specification 2- design 3- risk analysis 4- verification 5- coding 6- testing 7- refining 8- production",
    "- Bigger adress room\n- Better security \n- Reduce routing tables\n- Simplify headers",
    "1. more global addresses\n2. Increase security\n3. Reduce routing tables\n4. Simplify protocol processing",
    "time complexity using big O logarthmic O(log n) linear O(n) exponential O(n^2) quadratic O(n^k) Polynomial",
    "access specifiers and functions, oftentimes a constructor.",  # "a" is a word, not an unknown token
    # Mohler answers (human 5 of 5) that lingua, asked about all its languages, took for Italian or Afrikaans.
    "Nonconstant pointer to nonconstant data, nonconstant pointer to constant data, constant pointer to constant data",
    "if root, set root to NULL else if deleting right leaf, set rightPtr of parent to NULL",
    "The German word Zeiger means pointer: a pointer stores the address of a variable.",
    "梯度下降",  # too short to judge
])
def test_english_lists_and_technical_text_are_not_another_language(text):
    assert language_flag(text) is None


def test_code_is_not_judged_for_its_language():
    # A Mohler answer (human 5 of 5): code's identifiers are not English words, nor another language.
    assert language_flag("void inorder(ptNode ptr) { if (ptr) { inorder (ptr->left); cout<<ptr->data; inorder(ptr->right); } }") is None
