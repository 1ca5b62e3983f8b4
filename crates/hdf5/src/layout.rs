//! Copying a Keras template's layout.
